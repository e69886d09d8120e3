"""CloudEvents over HTTP: binary, structured and batch content modes, both ways.

Binary mode goes through the `cloudevents` SDK's HTTP binding, which owns the
`ce-` header mapping: percent-encoding of values (HTTP binding §3.1.3.2),
case-insensitive names, `Content-Type` as `datacontenttype`, RFC 3339 time.
Structured encoding goes through the SDK's JSON format too.

Decoding of structured and batch bodies is ours, on purpose: the SDK's JSON
format assumes the body is an object with a string `time` (an array or a number
there raises AttributeError or TypeError, not a decoding error), turns
`data_base64` into bytes, and has no batch mode at all. Ours parses once and
reports every failure as one `EventDecodeError` that names the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkCloudEvent

from mlplane_contracts.envelope import JSON, CloudEvent
from mlplane_contracts.errors import EventDecodeError
from mlplane_contracts.wire import (
    BATCH_CONTENT_TYPE,
    OPTIONAL_ATTRIBUTES,
    STRUCTURED_CONTENT_TYPE,
    data_to_json,
    event_from_binary,
    event_from_json,
    event_from_object,
    event_to_object,
    media_type,
    parse_json,
)

CONTENT_TYPE = "content-type"


@dataclass(frozen=True, slots=True)
class HttpMessage:
    """An event (or a batch) encoded as HTTP headers and body."""

    headers: dict[str, str]
    body: bytes


class _Attributes(SdkCloudEvent):
    """Attributes and data handed to or from the SDK binding, unchecked by the SDK.

    The SDK's own constructor fills in a missing `id` and `time` and applies its
    own rules. On input a missing `id` must be reported, not invented, and the
    contract validates once, with our models.
    """

    def __init__(
        self, attributes: dict[str, Any], data: dict[str, Any] | str | bytes | None = None
    ) -> None:
        self._attributes = attributes
        self._data = data


class _JsonDataAsBytes(JSONFormat):
    """The SDK's JSON format, except binary-mode data stays as the raw body.

    The SDK parses the body itself and silently falls back to text when it is not
    JSON; the payload model parses the bytes instead, once, and says what is wrong.
    """

    def write_data(
        self, data: dict[str, Any] | str | bytes | None, datacontenttype: str | None
    ) -> bytes:
        if isinstance(data, bytes):
            return data
        return super().write_data(data, datacontenttype)

    def read_data(
        self, body: bytes, datacontenttype: str | None
    ) -> dict[str, Any] | str | bytes | None:
        return body


_FORMAT = _JsonDataAsBytes()


def _attributes(event: CloudEvent) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "specversion": event.specversion,
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time,
        "datacontenttype": event.datacontenttype,
    }
    for name in OPTIONAL_ATTRIBUTES:
        value = getattr(event, name)
        if value is not None:
            attributes[name] = value
    return attributes


def encode_binary(event: CloudEvent) -> HttpMessage:
    """The event in binary mode: `ce-` headers, `content-type: application/json`, data as body."""
    message = sdk_http.to_binary(_Attributes(_attributes(event), data_to_json(event)), _FORMAT)
    return HttpMessage(headers=dict(message.headers), body=message.body)


def encode_structured(event: CloudEvent) -> HttpMessage:
    """The event in structured mode: `application/cloudevents+json`, the whole event as body."""
    as_object = event_to_object(event)
    data = as_object.pop("data")
    message = sdk_http.to_structured(_Attributes(as_object, data), _FORMAT)
    return HttpMessage(headers=dict(message.headers), body=message.body)


def encode_batch(events: Sequence[CloudEvent]) -> HttpMessage:
    """The events in batch mode: `application/cloudevents-batch+json`, a JSON array."""
    body = pydantic_core.to_json([event_to_object(event) for event in events])
    return HttpMessage(headers={CONTENT_TYPE: BATCH_CONTENT_TYPE}, body=body)


def decode_http(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """The events in an HTTP request or response, in any content mode.

    Batch mode gives every event in order (possibly none); structured and binary
    mode give a list of one. Header names are case-insensitive.

    Raises EventDecodeError naming the problem: unsupported specversion or
    content type, a missing attribute, an unknown type, a body that is not JSON,
    or each invalid field by path (batch errors say which item).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    kind = media_type(lowered.get(CONTENT_TYPE))
    if kind == BATCH_CONTENT_TYPE:
        return _decode_batch(body)
    if kind == STRUCTURED_CONTENT_TYPE:
        return [event_from_json(body)]
    return [_decode_binary(lowered, body)]


def _decode_binary(headers: dict[str, str], body: bytes) -> CloudEvent:
    try:
        received = sdk_http.from_binary(sdk_http.HTTPMessage(headers, body), _FORMAT, _Attributes)
    except (ValueError, OverflowError) as exc:
        # Only the `time` header is parsed by the SDK; everything else is text.
        raise EventDecodeError(f"time: not an RFC 3339 timestamp ({exc})") from exc
    attributes = received.get_attributes()
    return event_from_binary(attributes, body, attributes.get("datacontenttype", JSON))


def _decode_batch(body: bytes) -> list[CloudEvent]:
    items = parse_json(body, "batch")
    if not isinstance(items, list):
        raise EventDecodeError("a batch must be a JSON array of structured events")
    events: list[CloudEvent] = []
    for index, item in enumerate(items):
        try:
            events.append(event_from_object(item))
        except EventDecodeError as exc:
            raise EventDecodeError(f"batch item {index}: {exc}") from exc
    return events
