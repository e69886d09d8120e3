"""CloudEvents over AMQP (RabbitMQ): binary content mode out, every common form in.

Out: binary mode, attributes as `cloudEvents_<name>` headers (the prefix the
CloudEvents AMQP binding prefers, JMS-compatible), data as the JSON body,
content type `application/json`, routing key = type, message id = event id.

In: binary mode with `cloudEvents_`, `cloudEvents:` or `ce-` (Knative and other
RabbitMQ users) header prefixes, header values as `str` or `bytes` as aio-pika
delivers them; or structured mode (`application/cloudevents+json`, the whole
event in the body).

Why not the `cloudevents` SDK here: its AMQP binding targets AMQP 1.0
application properties and its RabbitMQ binding knows only `ce-`; both build the
SDK's own event object (validating it, parsing time with dateutil) before we
would validate again with our models. This runs per message on the bus, so it
maps headers straight to our envelope and validates once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlplane_contracts.envelope import JSON, CloudEvent
from mlplane_contracts.errors import EventDecodeError
from mlplane_contracts.wire import (
    ENVELOPE_ATTRIBUTES,
    STRUCTURED_CONTENT_TYPE,
    data_to_json,
    event_from_binary,
    event_from_json,
    event_to_json,
    format_time,
    media_type,
)

HEADER_PREFIX: Final = "cloudEvents_"
ACCEPTED_PREFIXES: Final = ("cloudEvents_", "cloudEvents:", "ce-")


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    """An event encoded for publishing: the parts of an AMQP 0-9-1 message."""

    routing_key: str
    body: bytes
    headers: dict[str, str | int]
    content_type: str
    message_id: str


def encode(event: CloudEvent) -> AmqpMessage:
    """The event in binary content mode, ready to publish to the events exchange."""
    headers: dict[str, str | int] = {
        "cloudEvents_specversion": event.specversion,
        "cloudEvents_id": event.id,
        "cloudEvents_source": event.source,
        "cloudEvents_type": event.type,
        "cloudEvents_time": format_time(event.time),
    }
    # Unset optional attributes are absent, not empty: an empty header would
    # decode as an empty string, not as None.
    if event.subject is not None:
        headers["cloudEvents_subject"] = event.subject
    if event.dataschema is not None:
        headers["cloudEvents_dataschema"] = event.dataschema
    if event.traceparent is not None:
        headers["cloudEvents_traceparent"] = event.traceparent
    if event.tracestate is not None:
        headers["cloudEvents_tracestate"] = event.tracestate
    if event.sequence is not None:
        headers["cloudEvents_sequence"] = event.sequence
    return AmqpMessage(
        routing_key=event.type,
        body=data_to_json(event),
        headers=headers,
        content_type=JSON,
        message_id=event.id,
    )


def encode_structured(event: CloudEvent) -> AmqpMessage:
    """The event in structured content mode: the whole event as the JSON body, no CE headers."""
    return AmqpMessage(
        routing_key=event.type,
        body=event_to_json(event),
        headers={},
        content_type=STRUCTURED_CONTENT_TYPE,
        message_id=event.id,
    )


def decode(headers: Mapping[str, Any], body: bytes, content_type: str | None) -> CloudEvent:
    """The event in a delivered message, binary or structured mode.

    Structured mode when the content type is `application/cloudevents+json`, or
    when no CloudEvents header is present and no content type is set; binary
    mode otherwise. Unknown extension attributes are dropped.

    Raises EventDecodeError naming the problem: unsupported specversion or
    content type, a missing attribute, an unknown type, a body that is not JSON,
    or each invalid field by path (e.g. `data.artifact.sha256: ...`).
    """
    if media_type(content_type) == STRUCTURED_CONTENT_TYPE:
        return event_from_json(body)
    attributes = attributes_from_headers(headers)
    if not attributes and content_type is None:
        return event_from_json(body)
    return event_from_binary(attributes, body, content_type)


def attributes_from_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """CloudEvents attributes in message headers, by any accepted prefix, as text.

    `sequence` keeps an integer value; `bytes` values are UTF-8 decoded.
    Raises EventDecodeError when a bytes value is not UTF-8.
    """
    attributes: dict[str, Any] = {}
    for key, value in headers.items():
        name = _KNOWN_HEADERS.get(key)
        if name is None:
            name = _attribute_name(key)
            if name is None:
                continue
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError as exc:
                raise EventDecodeError(f"header {key!r} is not UTF-8: {exc}") from exc
        attributes[name] = value
    return attributes


def _attribute_name(header: str) -> str | None:
    if header.startswith(("cloudEvents_", "cloudEvents:")):
        return header[12:].lower()
    if header[:3].lower() == "ce-":
        return header[3:].lower()
    return None


# Per-message fast path: the headers mlplane and most senders use, by exact name.
_KNOWN_HEADERS: Final = {
    prefix + name: name
    for prefix in ACCEPTED_PREFIXES
    for name in (*ENVELOPE_ATTRIBUTES, "datacontenttype")
}
