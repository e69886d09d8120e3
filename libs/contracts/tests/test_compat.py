"""The compatibility checker's rules, one by one, and the current contracts against the
last release (`libs/contracts/released/v<N>/`)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlplane_contracts.compat import (
    ASYNCAPI_FILE,
    Breaking,
    Rule,
    check_asyncapi,
    check_directories,
    check_schema,
    latest_release,
)
from mlplane_contracts.export import DEFAULT_DIRECTORY

RELEASED = DEFAULT_DIRECTORY.parent / "released"
SCHEMA_FILES = sorted(p.name for p in DEFAULT_DIRECTORY.glob("*.json") if p.name != ASYNCAPI_FILE)

BASE: dict[str, Any] = {
    "$id": "https://mlplane.io/schemas/events/io.mlplane.thing.v1.json",
    "title": "Thing",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 63, "title": "Name"},
        "kind": {"$ref": "#/$defs/Kind"},
        "size": {"type": "integer", "minimum": 0},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "kind", "size"],
    "$defs": {"Kind": {"enum": ["a", "b"], "type": "string", "title": "Kind"}},
}


def _changed(**edits: Any) -> dict[str, Any]:
    """A deep copy of BASE with `edits` applied at dotted paths (value None: delete)."""
    document = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        *parents, last = dotted.split("__")
        node = document
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return document


def _rules(findings: list[Breaking]) -> list[Rule]:
    return [finding.rule for finding in findings]


class TestAllowed:
    def test_the_same_schema_is_compatible(self) -> None:
        assert check_schema(BASE, copy.deepcopy(BASE), "thing") == []

    def test_an_added_optional_property_is_compatible(self) -> None:
        new = _changed(properties__extra={"type": "string", "default": None})
        assert check_schema(BASE, new, "thing") == []

    def test_changed_annotations_are_compatible(self) -> None:
        new = _changed(
            title="Another",
            description="Now described",
            examples=[{"name": "x"}],
            properties__name={"type": "string", "maxLength": 63, "title": "The name"},
        )
        new["$defs"]["Kind"]["description"] = "What kind"
        assert check_schema(BASE, new, "thing") == []

    def test_a_renamed_definition_holding_the_same_is_compatible(self) -> None:
        new = _changed(properties__kind={"$ref": "#/$defs/ThingKind"})
        new["$defs"] = {"ThingKind": BASE["$defs"]["Kind"]}
        assert check_schema(BASE, new, "thing") == []

    def test_reordered_enum_and_required_are_compatible(self) -> None:
        new = _changed(required=["size", "name", "kind"])
        new["$defs"]["Kind"]["enum"] = ["b", "a"]
        assert check_schema(BASE, new, "thing") == []

    @settings(max_examples=50, deadline=None)
    @given(
        title=st.text(max_size=30),
        description=st.text(max_size=60),
        examples=st.lists(st.dictionaries(st.text(max_size=5), st.integers()), max_size=3),
        file=st.sampled_from(SCHEMA_FILES),
    )
    def test_annotations_anywhere_in_a_real_schema_never_break(
        self, title: str, description: str, examples: list[Any], file: str
    ) -> None:
        old = json.loads((DEFAULT_DIRECTORY / file).read_text())
        new = copy.deepcopy(old)
        for node in _schemas_in(new):
            node["title"] = title
            node["description"] = description
            node["examples"] = examples
        assert check_schema(old, new, file) == []


class TestBreaking:
    @pytest.mark.parametrize(
        ("edits", "rule"),
        [
            ({"properties__size": None}, Rule.PROPERTY_REMOVED),
            (
                {
                    "properties__extra": {"type": "string"},
                    "required": ["name", "kind", "size", "extra"],
                },
                Rule.REQUIRED_ADDED,
            ),
            ({"required": ["name", "kind", "size", "note"]}, Rule.REQUIRED_ADDED),
            ({"required": ["name", "kind"]}, Rule.REQUIRED_REMOVED),
            ({"properties__size": {"type": "number", "minimum": 0}}, Rule.TYPE_CHANGED),
            ({"properties__size": {"type": ["integer", "null"], "minimum": 0}}, Rule.TYPE_CHANGED),
            ({"properties__size": {"type": "integer", "minimum": 1}}, Rule.CONSTRAINT_CHANGED),
            ({"properties__size": {"type": "integer"}}, Rule.CONSTRAINT_CHANGED),
            (
                {"properties__name": {"type": "string", "maxLength": 64, "title": "Name"}},
                Rule.CONSTRAINT_CHANGED,
            ),
            (
                {"properties__name": {"type": "string", "maxLength": 63, "pattern": "^a"}},
                Rule.CONSTRAINT_CHANGED,
            ),
            (
                {"properties__name": {"type": "string", "maxLength": 63, "format": "uri"}},
                Rule.CONSTRAINT_CHANGED,
            ),
            (
                {"properties__note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                Rule.CONSTRAINT_CHANGED,
            ),
            ({"properties__note": {"anyOf": [{"type": "string"}]}}, Rule.COMPOSITION_CHANGED),
            (
                {
                    "properties__note": {
                        "anyOf": [{"type": "integer"}, {"type": "null"}],
                        "default": None,
                    }
                },
                Rule.TYPE_CHANGED,
            ),
            (
                {"properties__tags": {"type": "array", "items": {"type": "integer"}}},
                Rule.TYPE_CHANGED,
            ),
            (
                {"properties__tags": {"type": "array", "items": {"type": "string"}, "maxItems": 9}},
                Rule.CONSTRAINT_CHANGED,
            ),
            ({"properties__tags": {"type": "array"}}, Rule.CONSTRAINT_CHANGED),
            ({"additionalProperties": True}, Rule.ADDITIONAL_PROPERTIES_CHANGED),
            ({"additionalProperties": None}, Rule.ADDITIONAL_PROPERTIES_CHANGED),
            (
                {"$id": "https://mlplane.io/schemas/events/io.mlplane.thing.v2.json"},
                Rule.CONSTRAINT_CHANGED,
            ),
        ],
    )
    def test_a_change_breaks(self, edits: dict[str, Any], rule: Rule) -> None:
        findings = check_schema(BASE, _changed(**edits), "thing")
        assert rule in _rules(findings), findings
        assert all(str(f).startswith("thing: ") for f in findings)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (
                {"patternProperties": {"^a": {"type": "string"}}},
                {"patternProperties": {"^a": {"type": "number"}}},
            ),
            (
                {"patternProperties": {"^a": {"type": "string"}}},
                {"patternProperties": {"^b": {"type": "string"}}},
            ),
            ({"propertyNames": {"maxLength": 3}}, {"propertyNames": {"maxLength": 4}}),
            ({}, {"propertyNames": {"maxLength": 4}}),
            (
                {"additionalProperties": {"type": "string"}},
                {"additionalProperties": {"type": "number"}},
            ),
            ({"type": "object"}, {"type": "object", "not": {"required": ["a"]}}),
        ],
    )
    def test_a_changed_map_of_schemas_breaks(
        self, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Open maps (metrics, params, labels) keep their value and name rules."""
        assert check_schema(old, new, "map") != []

    @pytest.mark.parametrize("values", [["a", "b", "c"], ["a"], ["a", "c"]])
    def test_an_enum_value_added_or_removed_breaks(self, values: list[str]) -> None:
        new = copy.deepcopy(BASE)
        new["$defs"]["Kind"]["enum"] = values
        [finding] = check_schema(BASE, new, "thing")
        assert finding.rule is Rule.ENUM_CHANGED
        assert finding.where == "thing: kind"

    def test_a_constraint_inside_a_definition_breaks_where_it_is_used(self) -> None:
        new = copy.deepcopy(BASE)
        new["$defs"]["Kind"]["maxLength"] = 1
        [finding] = check_schema(BASE, new, "thing")
        assert (finding.where, finding.rule) == ("thing: kind", Rule.CONSTRAINT_CHANGED)
        assert "maxLength (absent) -> 1" in finding.detail

    def test_a_recursive_definition_is_compared_once(self) -> None:
        tree: dict[str, Any] = {
            "$ref": "#/$defs/Node",
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                    },
                }
            },
        }
        changed = copy.deepcopy(tree)
        changed["$defs"]["Node"]["additionalProperties"] = False
        assert check_schema(tree, copy.deepcopy(tree), "tree") == []
        assert _rules(check_schema(tree, changed, "tree")) == [Rule.ADDITIONAL_PROPERTIES_CHANGED]

    @settings(max_examples=60, deadline=None)
    @given(data=st.data(), file=st.sampled_from(SCHEMA_FILES))
    def test_removing_any_property_of_a_real_schema_breaks(
        self, data: st.DataObject, file: str
    ) -> None:
        old = json.loads((DEFAULT_DIRECTORY / file).read_text())
        new = copy.deepcopy(old)
        objects = [node for node in _schemas_in(new) if node.get("properties")]
        node = data.draw(st.sampled_from(objects))
        name = data.draw(st.sampled_from(sorted(node["properties"])))
        del node["properties"][name]
        node["required"] = [r for r in node.get("required", []) if r != name]
        assert Rule.PROPERTY_REMOVED in _rules(check_schema(old, new, file))


class TestAsyncApi:
    @pytest.fixture
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((DEFAULT_DIRECTORY / ASYNCAPI_FILE).read_text())
        return loaded

    def test_the_same_document_is_compatible(self, document: dict[str, Any]) -> None:
        assert check_asyncapi(document, copy.deepcopy(document)) == []

    def test_a_new_type_is_compatible(self, document: dict[str, Any]) -> None:
        new = copy.deepcopy(document)
        [(_, message)] = list(new["components"]["messages"].items())[:1]
        added = copy.deepcopy(message)
        added["bindings"]["amqp"]["messageType"] = "io.mlplane.something.new.v1"
        new["components"]["messages"]["SomethingNew"] = added
        assert check_asyncapi(document, new) == []

    def test_a_removed_message_breaks(self, document: dict[str, Any]) -> None:
        new = copy.deepcopy(document)
        name = sorted(new["components"]["messages"])[0]
        event_type = new["components"]["messages"][name]["bindings"]["amqp"]["messageType"]
        del new["components"]["messages"][name]
        findings = check_asyncapi(document, new)
        assert [(f.rule, event_type in f.detail) for f in findings] == [(Rule.TYPE_REMOVED, True)]

    def test_a_removed_type_channel_breaks(self, document: dict[str, Any]) -> None:
        new = copy.deepcopy(document)
        types = {
            m["bindings"]["amqp"]["messageType"] for m in new["components"]["messages"].values()
        }
        name = next(n for n, c in sorted(new["channels"].items()) if c["address"] in types)
        del new["channels"][name]
        assert _rules(check_asyncapi(document, new)) == [Rule.TYPE_REMOVED]

    def test_a_queue_that_stops_consuming_a_type_is_not_a_contract_change(
        self, document: dict[str, Any]
    ) -> None:
        new = copy.deepcopy(document)
        queue = new["channels"]["builderQueue"]
        queue["messages"] = {}
        assert check_asyncapi(document, new) == []

    def test_a_changed_payload_breaks(self, document: dict[str, Any]) -> None:
        new = copy.deepcopy(document)
        payload = new["components"]["schemas"]["ImageBuilt"]
        payload["properties"]["builder_host"] = {"type": "string"}
        payload["required"] = [*payload["required"], "builder_host"]
        findings = check_asyncapi(document, new)
        assert _rules(findings) == [Rule.REQUIRED_ADDED], findings
        assert findings[0].where.endswith("ImageBuilt.payload.builder_host")

    def test_changed_headers_or_content_type_break(self, document: dict[str, Any]) -> None:
        new = copy.deepcopy(document)
        new["components"]["schemas"]["CloudEventHeaders"]["required"] = []
        name = sorted(new["components"]["messages"])[0]
        new["components"]["messages"][name]["contentType"] = "application/xml"
        rules = set(_rules(check_asyncapi(document, new)))
        assert {Rule.REQUIRED_REMOVED, Rule.MESSAGE_CHANGED} <= rules


class TestDirectories:
    def test_a_released_file_that_is_gone_is_a_removed_type(self, tmp_path: Path) -> None:
        released, current = tmp_path / "v1", tmp_path / "current"
        shutil.copytree(DEFAULT_DIRECTORY, released)
        shutil.copytree(DEFAULT_DIRECTORY, current)
        (current / SCHEMA_FILES[0]).unlink()
        [finding] = check_directories(released, current)
        assert (finding.where, finding.rule) == (SCHEMA_FILES[0], Rule.TYPE_REMOVED)

    def test_the_newest_release_is_the_baseline(self, tmp_path: Path) -> None:
        for name in ("v1", "v2", "v10", "notes", "v3x"):
            (tmp_path / name).mkdir()
        assert latest_release(tmp_path).name == "v10"
        with pytest.raises(FileNotFoundError):
            latest_release(tmp_path / "missing")


def test_the_current_contracts_are_compatible_with_the_last_release() -> None:
    baseline = latest_release(RELEASED)
    findings = check_directories(baseline, DEFAULT_DIRECTORY)
    assert not findings, (
        f"breaking changes since {baseline.name} (add a .v2 type instead):\n"
        + "\n".join(map(str, findings))
    )
    # The baseline is a whole release: every file of it was checked.
    assert {p.name for p in baseline.glob("*.json")} >= {*SCHEMA_FILES[:1], ASYNCAPI_FILE}


def _schemas_in(node: Any) -> list[dict[str, Any]]:
    """Every schema object in `node` (the node itself, definitions, properties, items...)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "type" in node or "properties" in node or "$ref" in node or "anyOf" in node:
            found.append(node)
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for child in value.values():
                    found.extend(_schemas_in(child))
            elif key not in ("enum", "const", "required", "examples", "default"):
                found.extend(_schemas_in(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_schemas_in(item))
    return found
