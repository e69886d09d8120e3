"""Events survive the HTTP binding in binary, structured and batch mode exactly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_contracts import (
    DRIFT_DETECTED,
    IMAGE_SCANNED,
    CloudEvent,
    EventDecodeError,
)
from mlplane_contracts.events import PLATFORM_PAYLOADS
from mlplane_contracts.examples import example_event
from mlplane_contracts.http import decode_http, encode_batch, encode_binary, encode_structured
from mlplane_contracts.testing import cloud_events, events_of

EVENT_TYPES = sorted(PLATFORM_PAYLOADS)
PROPERTIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_error(headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(EventDecodeError) as caught:
        decode_http(headers, body)
    return str(caught.value)


def _binary_headers(**changes: str | None) -> tuple[dict[str, str], bytes]:
    message = encode_binary(example_event(IMAGE_SCANNED))
    headers = dict(message.headers)
    for name, value in changes.items():
        if value is None:
            headers.pop(f"ce-{name}")
        else:
            headers[f"ce-{name}"] = value
    return headers, message.body


class TestRoundTrip:
    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    @PROPERTIES
    @given(data=st.data())
    def test_every_event_type_round_trips_through_binary_structured_and_batch_mode(
        self, event_type: str, data: st.DataObject
    ) -> None:
        event = data.draw(events_of(event_type))
        for message in (encode_binary(event), encode_structured(event), encode_batch([event])):
            assert decode_http(message.headers, message.body) == [event]

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=st.lists(cloud_events(), max_size=4))
    def test_a_batch_keeps_every_event_in_order(self, events: list[CloudEvent]) -> None:
        message = encode_batch(events)
        assert message.headers == {"content-type": "application/cloudevents-batch+json"}
        assert decode_http(message.headers, message.body) == events

    @PROPERTIES
    @given(event=events_of(DRIFT_DETECTED), data=st.data())
    def test_header_names_are_case_insensitive(
        self, event: CloudEvent, data: st.DataObject
    ) -> None:
        message = encode_binary(event)
        headers = {
            "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in name): value
            for name, value in message.headers.items()
        }
        assert decode_http(headers, message.body) == [event]

    @PROPERTIES
    @given(event=cloud_events())
    def test_binary_header_values_are_printable_ascii(self, event: CloudEvent) -> None:
        # Attribute text can be any Unicode; HTTP field values cannot, so the
        # binding percent-encodes them.
        for value in encode_binary(event).headers.values():
            assert value.isascii()
            assert value.isprintable()


class TestEncoding:
    def test_binary_mode_puts_attributes_in_ce_headers(self) -> None:
        event = example_event(IMAGE_SCANNED)
        message = encode_binary(event)
        assert message.headers == {
            "ce-specversion": "1.0",
            "ce-id": event.id,
            "ce-source": "/mlplane/scanner",
            "ce-type": IMAGE_SCANNED,
            "ce-time": "2025-03-14T09:26:53Z",
            "ce-subject": "models/risk/fraud/versions/7",
            "ce-dataschema": event.dataschema,
            "ce-traceparent": event.traceparent,
            "ce-sequence": "3",
            "content-type": "application/json",
        }
        assert message.body == event.data.model_dump_json().encode()

    def test_binary_mode_percent_encodes_header_values(self) -> None:
        event = example_event(IMAGE_SCANNED).model_copy(update={"subject": 'a "b" 100% é'})
        message = encode_binary(event)
        assert message.headers["ce-subject"] == "a%20%22b%22%20100%25%20%C3%A9"
        assert decode_http(message.headers, message.body)[0].subject == 'a "b" 100% é'

    def test_structured_mode_uses_the_cloudevents_json_content_type(self) -> None:
        message = encode_structured(example_event(IMAGE_SCANNED))
        assert message.headers == {"content-type": "application/cloudevents+json"}

    def test_an_empty_batch_decodes_to_no_events(self) -> None:
        message = encode_batch([])
        assert decode_http(message.headers, message.body) == []


class TestDecodingInput:
    def test_structured_content_type_parameters_and_case_are_ignored(self) -> None:
        event = example_event(IMAGE_SCANNED)
        body = encode_structured(event).body
        headers = {"Content-Type": "Application/CloudEvents+JSON; charset=utf-8"}
        assert decode_http(headers, body) == [event]

    def test_binary_mode_accepts_json_with_a_charset(self) -> None:
        headers, body = _binary_headers()
        headers["content-type"] = "application/json; charset=utf-8"
        assert decode_http(headers, body) == [example_event(IMAGE_SCANNED)]


class TestDecodeErrors:
    @pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
    def test_missing_required_attribute_is_named(self, attribute: str) -> None:
        headers, body = _binary_headers(**{attribute: None})
        assert _decode_error(headers, body) == f"missing required attribute {attribute!r}"

    def test_unknown_type_is_named(self) -> None:
        headers, body = _binary_headers(type="com.example.other")
        assert _decode_error(headers, body) == "unknown event type 'com.example.other'"

    def test_invalid_payload_field_is_named_by_its_path(self) -> None:
        headers, body = _binary_headers()
        body = body.replace(b'"verdict":"failed"', b'"verdict":"fine"')
        assert _decode_error(headers, body).startswith(
            "data.verdict: Input should be 'passed', 'failed' or 'error'"
        )

    def test_invalid_time_header_is_reported(self) -> None:
        headers, body = _binary_headers(time="not-a-time")
        assert _decode_error(headers, body).startswith("time: not an RFC 3339 timestamp")

    def test_binary_body_that_is_not_json_is_reported(self) -> None:
        headers, _ = _binary_headers()
        assert _decode_error(headers, b"<html>").startswith("data is not JSON")

    def test_structured_body_that_is_not_json_is_reported(self) -> None:
        reason = _decode_error({"content-type": "application/cloudevents+json"}, b"{")
        assert reason.startswith("structured event is not JSON")

    def test_batch_that_is_not_json_is_reported(self) -> None:
        reason = _decode_error({"content-type": "application/cloudevents-batch+json"}, b"[")
        assert reason.startswith("batch is not JSON")

    def test_batch_must_be_an_array(self) -> None:
        body = encode_structured(example_event(IMAGE_SCANNED)).body
        reason = _decode_error({"content-type": "application/cloudevents-batch+json"}, body)
        assert reason == "a batch must be a JSON array of structured events"

    def test_batch_error_names_the_item(self) -> None:
        good = example_event(IMAGE_SCANNED)
        bad = good.model_copy(update={"type": "com.example.other"})
        message = encode_batch([good, bad])
        assert _decode_error(message.headers, message.body) == (
            "batch item 1: unknown event type 'com.example.other'"
        )

    def test_unsupported_specversion_is_reported(self) -> None:
        headers, body = _binary_headers(specversion="0.3")
        assert (
            _decode_error(headers, body) == "unsupported specversion '0.3' (only '1.0' is accepted)"
        )

    def test_unsupported_content_type_is_reported(self) -> None:
        headers, body = _binary_headers()
        headers["content-type"] = "text/plain"
        assert _decode_error(headers, body) == (
            "unsupported content type 'text/plain' (data must be application/json)"
        )

    def test_structured_data_base64_is_refused(self) -> None:
        body = (
            b'{"specversion":"1.0","id":"1","source":"/s","type":"%s","data_base64":"e30="}'
            % IMAGE_SCANNED.encode()
        )
        reason = _decode_error({"content-type": "application/cloudevents+json"}, body)
        assert reason == "data_base64 is not supported: data must be JSON"

    def test_a_plain_json_request_is_not_an_event(self) -> None:
        reason = _decode_error({"content-type": "application/json"}, b"{}")
        assert reason == "missing required attribute 'specversion'"
