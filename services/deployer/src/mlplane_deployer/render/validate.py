"""Check rendered objects against Kubernetes schemas before anything is committed.

Built-in kinds use the schemas `kubernetes-validate` ships (strict: an unknown
field is an error, as `kubectl apply --validate=strict` treats it). Custom
resources use CRD schemas kept in `crds/` (Argo CD Application, KServe
InferenceService, Prometheus Operator ServiceMonitor, Gateway API HTTPRoute),
closed the same way: where a schema lists properties and does not preserve
unknown fields, anything else is refused. Every error is reported, not the first.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from mlplane_deployer.domain.errors import InvalidManifests

DEFAULT_KUBERNETES_VERSION = "1.28"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class ManifestError:
    source: str
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.kind}/{self.name} at {self.path or '.'}: {self.message}"


def _close(schema: Any) -> Any:
    """A copy of an OpenAPI v3 CRD schema as JSON Schema, refusing unknown fields."""
    if isinstance(schema, list):
        return [_close(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _close(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in out if k.startswith("x-kubernetes-")]:
        del out[key]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → closed schema, from every CRD file in `crds/`."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    folder = resources.files("mlplane_deployer.render").joinpath("crds")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        crd = yaml.safe_load(entry.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # The API server checks metadata itself; the CRD schema leaves it open.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            found[(f"{group}/{version['name']}", kind)] = _close(schema)
    return found


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")[:2]
    return int(major), int(minor)


@functools.cache
def _builtin_validator(version: str, api_version: str, kind: str) -> jsonschema.Validator | None:
    wanted = _minor(version)
    supported = [v for v in kv.all_versions() if _minor(v) <= wanted]
    if not supported:
        raise ValueError(f"kubernetes-validate has no schemas for {version}")
    schema_version = supported[-1]
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = kv.schema_contents(f"{folder}/_definitions.json", version)
    registry: Registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Validator | None:
    schema = _crd_schemas().get((api_version, kind))
    return None if schema is None else jsonschema.Draft7Validator(schema)


def errors_of(
    obj: dict[str, Any], source: str, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> list[ManifestError]:
    """Every schema error of one object; an unknown kind is itself an error."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = str(metadata.get("name", "?")) if metadata else "?"

    def error(path: str, message: str) -> ManifestError:
        return ManifestError(source, kind or "?", name, path, message)

    if not api_version or not kind:
        return [error("", "an object names its apiVersion and kind")]
    validator = _crd_validator(api_version, kind)
    found: list[ManifestError] = []
    if validator is not None:
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            found.append(error("metadata.name", f"{name!r} is not a DNS subdomain"))
    else:
        validator = _builtin_validator(kubernetes_version, api_version, kind)
    if validator is None:
        return [error("", f"no schema for {api_version} {kind} at Kubernetes {kubernetes_version}")]
    for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        found.append(error(".".join(str(p) for p in e.absolute_path), e.message))
    return found


def validate_objects(
    objects: Iterable[tuple[str, dict[str, Any]]],
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
) -> None:
    """Validate (source, object) pairs; raises `InvalidManifests` listing every error."""
    found = [e for source, obj in objects for e in errors_of(obj, source, kubernetes_version)]
    if found:
        raise InvalidManifests(
            f"{len(found)} schema error(s) in rendered manifests",
            errors=[str(e) for e in found],
        )


def validate_documents(
    text: str, source: str, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> int:
    """Validate a multi-document YAML stream (`kubectl kustomize` output); returns the count.

    Raises `InvalidManifests` listing every error.
    """
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    validate_objects(((source, d) for d in docs), kubernetes_version)
    return len(docs)
