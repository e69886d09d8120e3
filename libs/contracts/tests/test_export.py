"""The published JSON Schemas and AsyncAPI document match the code and describe real events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from mlplane_contracts import IMAGE_BUILT
from mlplane_contracts.__main__ import main
from mlplane_contracts.amqp import encode
from mlplane_contracts.events import PUBLISHED_PAYLOADS
from mlplane_contracts.examples import example_event
from mlplane_contracts.export import (
    ASYNCAPI_FILE,
    DEFAULT_DIRECTORY,
    generate,
    schema_file_name,
    stale,
    write,
)
from mlplane_contracts.testing import events_of
from mlplane_contracts.topology import CONSUMES, EXCHANGE, queue_name

EVENT_TYPES = sorted(PUBLISHED_PAYLOADS)


def _committed(name: str) -> Any:
    return json.loads((DEFAULT_DIRECTORY / name).read_text(encoding="utf-8"))


def _resolve(document: Any, reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node = document
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


class TestCommittedFiles:
    def test_committed_schemas_equal_what_the_code_generates(self) -> None:
        assert stale(DEFAULT_DIRECTORY) == [], "run: python -m mlplane_contracts export"

    def test_generation_is_deterministic(self) -> None:
        assert generate() == generate()
        for text in generate().values():
            assert text.endswith("}\n")

    def test_check_exits_1_and_names_a_changed_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write(tmp_path)
        assert main(["export", "--check", "--out", str(tmp_path)]) == 0
        changed = tmp_path / schema_file_name(IMAGE_BUILT)
        changed.write_text(changed.read_text().replace("Digest", "Dijest"))
        assert main(["export", "--check", "--out", str(tmp_path)]) == 1
        assert f"{schema_file_name(IMAGE_BUILT)} (differs)" in capsys.readouterr().err

    def test_check_names_missing_and_leftover_files(self, tmp_path: Path) -> None:
        write(tmp_path)
        (tmp_path / ASYNCAPI_FILE).unlink()
        (tmp_path / "io.mlplane.model.deleted.v1.json").write_text("{}\n")
        assert stale(tmp_path) == [
            f"{ASYNCAPI_FILE} (missing)",
            "io.mlplane.model.deleted.v1.json (no longer generated)",
        ]

    def test_export_writes_one_schema_per_type_and_the_asyncapi_document(
        self, tmp_path: Path
    ) -> None:
        assert main(["export", "--out", str(tmp_path)]) == 0
        names = sorted(path.name for path in tmp_path.iterdir())
        assert names == sorted([ASYNCAPI_FILE, *(schema_file_name(t) for t in EVENT_TYPES)])


class TestJsonSchemas:
    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_schema_is_valid_draft_2020_12_and_identified_by_the_dataschema_url(
        self, event_type: str
    ) -> None:
        schema = _committed(schema_file_name(event_type))
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == PUBLISHED_PAYLOADS[event_type].dataschema()

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_schema_accepts_the_data_of_real_events(
        self, event_type: str, data: st.DataObject
    ) -> None:
        validator = Draft202012Validator(_committed(schema_file_name(event_type)))
        event = data.draw(events_of(event_type))
        validator.validate(json.loads(encode(event).body))

    def test_schema_rejects_what_the_model_rejects(self) -> None:
        validator = Draft202012Validator(_committed(schema_file_name(IMAGE_BUILT)))
        payload = json.loads(encode(example_event(IMAGE_BUILT)).body)
        validator.validate(payload)
        for broken in (
            {**payload, "image": {**payload["image"], "digest": "sha256:ABC"}},
            {**payload, "team": "Risk"},
            {**payload, "extra": 1},
            {**payload, "layers": []},
            {key: value for key, value in payload.items() if key != "version"},
        ):
            with pytest.raises(SchemaError):
                validator.validate(broken)


class TestAsyncApi:
    def test_document_is_asyncapi_3_and_every_reference_resolves(self) -> None:
        document = _committed(ASYNCAPI_FILE)
        assert document["asyncapi"] == "3.0.0"
        for reference in _references(document):
            target = _resolve(document, reference)
            assert "$ref" not in target or target["$ref"] != reference, reference

    def test_every_event_type_is_a_message_on_a_routing_key_channel(self) -> None:
        document = _committed(ASYNCAPI_FILE)
        message_names = {message["name"] for message in document["components"]["messages"].values()}
        assert message_names == set(EVENT_TYPES)
        routed = {
            channel["address"]: channel
            for channel in document["channels"].values()
            if channel["bindings"]["amqp"]["is"] == "routingKey"
        }
        assert set(routed) == set(EVENT_TYPES)
        for channel in routed.values():
            assert channel["bindings"]["amqp"]["exchange"]["name"] == EXCHANGE
            assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"

    def test_each_service_queue_lists_the_messages_it_consumes(self) -> None:
        document = _committed(ASYNCAPI_FILE)
        queues = {
            channel["address"]: channel
            for channel in document["channels"].values()
            if channel["bindings"]["amqp"]["is"] == "queue"
        }
        for service, consumed in CONSUMES.items():
            messages = queues[queue_name(service)]["messages"].values()
            names = {_resolve(document, ref["$ref"])["name"] for ref in messages}
            assert names == set(consumed)

    def test_message_examples_validate_against_their_payload_schemas(self) -> None:
        document = _committed(ASYNCAPI_FILE)
        for message in document["components"]["messages"].values():
            schema = _committed(schema_file_name(message["name"]))
            for example in message["examples"]:
                Draft202012Validator(schema).validate(example["payload"])
                assert example["headers"]["cloudEvents_type"] == message["name"]
