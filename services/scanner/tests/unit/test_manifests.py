"""Splitting rendered manifests into one file per Kubernetes object, refusing the rest."""

from __future__ import annotations

import json

import pytest
from mlplane_scanner.domain.errors import InvalidManifests
from mlplane_scanner.domain.manifests import split_manifests

SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n"


def test_yaml_documents_become_one_file_each_and_empty_ones_are_dropped() -> None:
    body = f"---\n{SERVICE}---\n# only a comment\n---\n{SERVICE}".encode()
    assert list(split_manifests(body, "application/yaml")) == ["manifest-0.yaml", "manifest-1.yaml"]


def test_a_json_list_kind_is_unpacked() -> None:
    item = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": [item, item]}).encode()
    files = split_manifests(body, "application/json")
    assert [json.loads(text)["kind"] for text in files.values()] == ["Service", "Service"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"kind: Service\n", "body[0].apiVersion"),
        (f"{SERVICE}---\n  kind: Nested\n".encode(), "body[1].apiVersion"),
        (b'[{"apiVersion": "v1"}]', "body[0].kind"),
        (b"[1]", "body[0]"),
        (b"\xff\xfe", "body"),
        (b"   ", "body"),
        (b"apiVersion: v1\nkind: [unclosed\n", "body"),
        (b"- just\n- a list\n", "body[0]"),
    ],
)
def test_what_is_not_a_manifest_is_refused_naming_where(body: bytes, field: str) -> None:
    with pytest.raises(InvalidManifests) as caught:
        split_manifests(body, None)
    assert caught.value.extensions["field"] == field


def test_yaml_is_parsed_not_pattern_matched() -> None:
    # `kind` only inside a nested block is no top-level kind, whatever the text looks like.
    body = b"apiVersion: v1\nmetadata:\n  kind: Service\n"
    with pytest.raises(InvalidManifests) as caught:
        split_manifests(body, "application/yaml")
    assert caught.value.extensions["field"] == "body[0].kind"
    files = split_manifests(SERVICE.encode(), "application/yaml")
    assert json.loads(files["manifest-0.yaml"])["metadata"] == {"name": "a"}
