"""Rendered Kubernetes manifests, as the deployer sends them, split into files for Trivy.

JSON bodies (an object, a list of objects, or a `kind: List`) and YAML bodies
(documents separated by `---`, parsed safely) must hold Kubernetes objects, each
naming its `apiVersion` and `kind`. Every object becomes its own file, so a
finding names the document it is in (`manifest-2.yaml`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from mlplane_scanner.domain.errors import InvalidManifests

MAX_DOCUMENTS = 200
MAX_BYTES = 4 * 1024 * 1024


def split_manifests(body: bytes, content_type: str | None) -> dict[str, str]:
    """File name → document text, one per Kubernetes object in `body`.

    Raises `InvalidManifests` (with the field path of the first bad document) for
    an empty or oversized body, text that is not UTF-8, JSON that does not parse,
    or a document that is not a Kubernetes object.
    """
    if not body.strip():
        raise InvalidManifests("the body holds no manifest", field="body")
    if len(body) > MAX_BYTES:
        raise InvalidManifests(f"manifests larger than {MAX_BYTES} bytes", field="body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidManifests(f"the body is not UTF-8: {exc}", field="body") from None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    looks_json = media.endswith("json") or text.lstrip()[:1] in ("{", "[")
    documents = _json_documents(text) if looks_json else _yaml_documents(text)
    if not documents:
        raise InvalidManifests("the body holds no manifest", field="body")
    if len(documents) > MAX_DOCUMENTS:
        raise InvalidManifests(f"at most {MAX_DOCUMENTS} manifests at once", field="body")
    return {f"manifest-{index}.yaml": doc for index, doc in enumerate(documents)}


def _json_documents(text: str) -> list[str]:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidManifests(f"the body is not valid JSON: {exc}", field="body") from None
    if isinstance(parsed, Mapping) and parsed.get("kind") == "List":
        parsed = parsed.get("items")
    items = parsed if isinstance(parsed, list) else [parsed]
    documents: list[str] = []
    for index, item in enumerate(items):
        _check_object(item, f"body[{index}]")
        # JSON is YAML: Trivy's Kubernetes checks read it as it is.
        documents.append(json.dumps(item, indent=2))
    return documents


def _check_object(item: Any, path: str) -> None:
    if not isinstance(item, Mapping):
        raise InvalidManifests(f"{path} is not a Kubernetes object", field=path)
    for key in ("apiVersion", "kind"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise InvalidManifests(f"{path} has no {key}", field=f"{path}.{key}")


def _yaml_documents(text: str) -> list[str]:
    try:
        parsed = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise InvalidManifests(f"the body is not valid YAML: {exc}", field="body") from None
    documents: list[str] = []
    for index, item in enumerate(parsed):
        _check_object(item, f"body[{index}]")
        # Re-serialised as JSON (which is YAML): what Trivy reads is exactly what was checked.
        documents.append(json.dumps(item, indent=2, default=str))
    return documents
