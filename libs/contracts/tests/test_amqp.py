"""Events survive the AMQP binding exactly, and bad messages fail with a precise reason."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_contracts import (
    IMAGE_BUILT,
    MODEL_VERSION_REGISTERED,
    CloudEvent,
    EventDecodeError,
)
from mlplane_contracts.amqp import AmqpMessage, decode, encode, encode_structured
from mlplane_contracts.events import PLATFORM_PAYLOADS
from mlplane_contracts.examples import example_event
from mlplane_contracts.testing import events_of

EVENT_TYPES = sorted(PLATFORM_PAYLOADS)
PROPERTIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _as_delivered(message: AmqpMessage) -> dict[str, Any]:
    # aio-pika hands string header values over as bytes or str; ints stay ints.
    return {k: v.encode() if isinstance(v, str) else v for k, v in message.headers.items()}


def _decode_error(headers: dict[str, Any], body: bytes, content_type: str | None) -> str:
    with pytest.raises(EventDecodeError) as caught:
        decode(headers, body, content_type)
    return str(caught.value)


def _binary(**header_changes: Any) -> tuple[dict[str, Any], bytes]:
    message = encode(example_event(MODEL_VERSION_REGISTERED))
    headers: dict[str, Any] = dict(message.headers)
    for name, value in header_changes.items():
        if value is None:
            headers.pop(f"cloudEvents_{name}")
        else:
            headers[f"cloudEvents_{name}"] = value
    return headers, message.body


class TestRoundTrip:
    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    @PROPERTIES
    @given(data=st.data())
    def test_every_event_type_round_trips_through_binary_and_structured_mode(
        self, event_type: str, data: st.DataObject
    ) -> None:
        event = data.draw(events_of(event_type))
        binary = encode(event)
        assert decode(binary.headers, binary.body, binary.content_type) == event
        assert decode(_as_delivered(binary), binary.body, binary.content_type) == event
        structured = encode_structured(event)
        assert decode(structured.headers, structured.body, structured.content_type) == event

    @PROPERTIES
    @given(event=events_of(IMAGE_BUILT), prefix=st.sampled_from(["ce-", "cloudEvents:", "CE-"]))
    def test_ce_and_colon_header_prefixes_are_accepted(
        self, event: CloudEvent, prefix: str
    ) -> None:
        message = encode(event)
        headers = {
            prefix + name.removeprefix("cloudEvents_"): value
            for name, value in message.headers.items()
        }
        assert decode(headers, message.body, message.content_type) == event

    def test_reencoding_a_decoded_event_gives_the_same_message(self) -> None:
        message = encode(example_event(MODEL_VERSION_REGISTERED))
        assert encode(decode(message.headers, message.body, message.content_type)) == message


class TestEncoding:
    def test_binary_mode_uses_cloud_events_headers_routing_key_and_message_id(self) -> None:
        event = example_event(IMAGE_BUILT)
        message = encode(event)
        assert message.routing_key == IMAGE_BUILT
        assert message.message_id == event.id
        assert message.content_type == "application/json"
        assert message.headers == {
            "cloudEvents_specversion": "1.0",
            "cloudEvents_id": event.id,
            "cloudEvents_source": "/mlplane/builder",
            "cloudEvents_type": IMAGE_BUILT,
            "cloudEvents_time": "2025-03-14T09:26:53Z",
            "cloudEvents_subject": event.subject,
            "cloudEvents_dataschema": event.dataschema,
            "cloudEvents_traceparent": event.traceparent,
            "cloudEvents_sequence": 3,
        }
        assert message.body == event.data.model_dump_json().encode()

    def test_unset_optional_attributes_send_no_header(self) -> None:
        event = example_event(IMAGE_BUILT).model_copy(
            update={"subject": None, "traceparent": None, "sequence": None, "dataschema": None}
        )
        assert sorted(encode(event).headers) == [
            "cloudEvents_id",
            "cloudEvents_source",
            "cloudEvents_specversion",
            "cloudEvents_time",
            "cloudEvents_type",
        ]

    def test_structured_mode_carries_the_whole_event_in_the_body(self) -> None:
        message = encode_structured(example_event(IMAGE_BUILT))
        assert message.content_type == "application/cloudevents+json"
        assert message.headers == {}
        assert b'"specversion":"1.0"' in message.body
        assert b'"data":{' in message.body


class TestDecodingInput:
    def test_structured_mode_without_content_type_or_ce_headers_is_recognized(self) -> None:
        event = example_event(IMAGE_BUILT)
        assert decode({}, encode_structured(event).body, None) == event

    def test_content_type_parameters_and_case_are_ignored(self) -> None:
        event = example_event(IMAGE_BUILT)
        message = encode(event)
        assert decode(message.headers, message.body, "Application/JSON; charset=utf-8") == event
        structured = encode_structured(event)
        assert decode({}, structured.body, "application/cloudevents+json; charset=UTF-8") == event

    def test_binary_mode_without_content_type_means_json(self) -> None:
        message = encode(example_event(IMAGE_BUILT))
        assert decode(message.headers, message.body, None) == example_event(IMAGE_BUILT)

    def test_unknown_extension_attributes_and_other_headers_are_ignored(self) -> None:
        headers, body = _binary(knativearrivaltime="2025-03-14T09:26:54Z")
        headers["x-mlplane-attempt"] = 2
        assert decode(headers, body, "application/json") == example_event(MODEL_VERSION_REGISTERED)

    def test_sequence_sent_as_text_is_accepted(self) -> None:
        headers, body = _binary(sequence=b"3")
        assert decode(headers, body, None).sequence == 3


class TestDecodeErrors:
    @pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
    def test_missing_required_attribute_is_named(self, attribute: str) -> None:
        headers, body = _binary(**{attribute: None})
        assert _decode_error(headers, body, "application/json") == (
            f"missing required attribute {attribute!r}"
        )

    def test_unknown_type_is_named(self) -> None:
        headers, body = _binary(type="io.mlplane.model.deleted.v1")
        assert (
            _decode_error(headers, body, None) == "unknown event type 'io.mlplane.model.deleted.v1'"
        )

    def test_invalid_payload_field_is_named_by_its_path(self) -> None:
        event = example_event(MODEL_VERSION_REGISTERED)
        message = encode(event)
        body = message.body.replace(event.data.artifact.sha256.encode(), b"NOT-A-SHA")  # type: ignore[attr-defined]
        reason = _decode_error(dict(message.headers), body, message.content_type)
        assert reason.startswith("data.artifact.sha256: String should match pattern")

    def test_every_invalid_field_is_listed(self) -> None:
        headers, _ = _binary()
        reason = _decode_error(headers, b'{"team": "Risk"}', None)
        assert "data.team: String should match pattern" in reason
        assert "data.model: Field required" in reason
        assert "data.version: Field required" in reason

    def test_invalid_attribute_is_named(self) -> None:
        headers, body = _binary(sequence="third")
        assert _decode_error(headers, body, None).startswith(
            "sequence: Input should be a valid integer"
        )
        headers, body = _binary(time="yesterday")
        assert _decode_error(headers, body, None).startswith(
            "time: Input should be a valid datetime"
        )

    def test_body_that_is_not_json_is_reported(self) -> None:
        headers, _ = _binary()
        assert _decode_error(headers, b"\x00garbage", "application/json").startswith(
            "data is not JSON"
        )

    def test_structured_body_that_is_not_json_is_reported(self) -> None:
        reason = _decode_error({}, b"{not json", "application/cloudevents+json")
        assert reason.startswith("structured event is not JSON")

    def test_structured_body_must_be_an_object(self) -> None:
        reason = _decode_error({}, b"[1, 2]", "application/cloudevents+json")
        assert reason == "a structured event must be a JSON object, got an array"

    def test_structured_event_without_data_is_reported(self) -> None:
        body = b'{"specversion":"1.0","id":"1","source":"/s","type":"%s"}' % IMAGE_BUILT.encode()
        assert (
            _decode_error({}, body, None) == "missing data: every mlplane event carries a payload"
        )

    def test_unsupported_specversion_is_reported(self) -> None:
        headers, body = _binary(specversion="0.3")
        assert _decode_error(headers, body, None) == (
            "unsupported specversion '0.3' (only '1.0' is accepted)"
        )

    def test_unsupported_content_type_is_reported(self) -> None:
        headers, body = _binary()
        assert _decode_error(headers, body, "application/avro") == (
            "unsupported content type 'application/avro' (data must be application/json)"
        )

    def test_header_that_is_not_utf8_is_reported(self) -> None:
        headers, body = _binary(source=b"\xff\xfe")
        assert _decode_error(headers, body, None).startswith(
            "header 'cloudEvents_source' is not UTF-8"
        )

    def test_no_cloud_events_headers_at_all_names_the_first_missing_attribute(self) -> None:
        assert (
            _decode_error({}, b"{}", "application/json")
            == "missing required attribute 'specversion'"
        )

    def test_decode_error_is_a_value_error(self) -> None:
        assert issubclass(EventDecodeError, ValueError)
