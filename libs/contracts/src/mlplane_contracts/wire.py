"""A CloudEvent on the wire, whatever the binding: attributes in, validated event out.

The AMQP and HTTP bindings differ only in where attributes travel (headers with
some prefix, or a JSON object); both end here, so every binding checks the same
things in the same order and fails with the same `EventDecodeError` messages:
specversion, required attributes, known type, content type, then the payload
and the envelope by their pydantic models. Payload JSON is validated straight
from bytes by its model: one parse, one validation per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import pydantic_core
from pydantic import ValidationError

from mlplane_contracts.envelope import (
    JSON,
    SPEC_VERSION,
    CloudEvent,
    EventPayload,
    payload_model_for,
)
from mlplane_contracts.errors import EventDecodeError

STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"

REQUIRED_ATTRIBUTES: Final = ("specversion", "id", "source", "type")
OPTIONAL_ATTRIBUTES: Final = ("subject", "dataschema", "traceparent", "tracestate", "sequence")
"""Attributes written only when set (besides `time`, which is always set)."""
ENVELOPE_ATTRIBUTES: Final = frozenset(CloudEvent.model_fields) - {"data"}
"""Every attribute the envelope knows; other extensions on input are dropped."""


def media_type(content_type: str | None) -> str | None:
    """`content_type` lowercased, without parameters: `Text/Plain; charset=x` → `text/plain`."""
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower()


def format_time(moment: datetime) -> str:
    """RFC 3339 text for `moment`, with `Z` for UTC as the CloudEvents spec writes it."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def check_data_content_type(content_type: str | None) -> None:
    """Accept JSON data (or no declared type, meaning JSON); raise EventDecodeError otherwise."""
    if content_type is not None and media_type(content_type) != JSON:
        raise EventDecodeError.unsupported_content_type(content_type)


def payload_model(attributes: Mapping[str, Any]) -> type[EventPayload]:
    """The payload model the attributes' `type` names, after checking the required attributes.

    Raises EventDecodeError for an unsupported specversion, a missing required
    attribute, or a type no payload is registered for.
    """
    if "specversion" not in attributes:
        raise EventDecodeError.missing_attribute("specversion")
    if attributes["specversion"] != SPEC_VERSION:
        raise EventDecodeError.unsupported_specversion(attributes["specversion"])
    for name in REQUIRED_ATTRIBUTES[1:]:
        if attributes.get(name) is None:
            raise EventDecodeError.missing_attribute(name)
    event_type = attributes["type"]
    if not isinstance(event_type, str):
        raise EventDecodeError(f"type: must be a string, got {type(event_type).__name__}")
    model = payload_model_for(event_type)
    if model is None:
        raise EventDecodeError.unknown_type(event_type)
    return model


def event_from_binary(
    attributes: Mapping[str, Any], body: bytes, content_type: str | None
) -> CloudEvent:
    """The event whose attributes came as headers and whose data is the JSON `body`.

    Raises EventDecodeError naming the problem: specversion, a missing attribute,
    an unknown type, non-JSON content type or body, or each invalid field by path.
    """
    check_data_content_type(content_type)
    model = payload_model(attributes)
    try:
        payload = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid(exc, "data") from exc
    return _envelope(attributes, payload)


def event_from_json(body: bytes | str) -> CloudEvent:
    """The event in a structured-mode body (one JSON object, data inline).

    Raises EventDecodeError when the body is not JSON or not a valid event.
    """
    return event_from_object(parse_json(body, "structured event"))


def parse_json(body: bytes | str, what: str) -> Any:
    """`body` parsed as JSON; raises EventDecodeError naming `what` when it is not JSON."""
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:
        raise EventDecodeError.not_json(what, str(exc)) from exc


def event_from_object(event: Any) -> CloudEvent:
    """The event in a parsed structured-mode JSON object.

    Raises EventDecodeError when it is not an object or not a valid event.
    """
    if not isinstance(event, dict):
        raise EventDecodeError(f"a structured event must be a JSON object, got {_json_kind(event)}")
    if "data_base64" in event:
        raise EventDecodeError("data_base64 is not supported: data must be JSON")
    check_data_content_type(event.get("datacontenttype"))
    model = payload_model(event)
    if "data" not in event:
        raise EventDecodeError("missing data: every mlplane event carries a payload")
    try:
        payload = model.model_validate(event["data"])
    except ValidationError as exc:
        raise invalid(exc, "data") from exc
    return _envelope(event, payload)


def event_to_object(event: CloudEvent) -> dict[str, Any]:
    """The event as a structured-mode JSON object; unset optional attributes are left out."""
    unset = {name for name in OPTIONAL_ATTRIBUTES if getattr(event, name) is None}
    as_object: dict[str, Any] = event.model_dump(mode="json", exclude=unset)
    return as_object


def event_to_json(event: CloudEvent) -> bytes:
    """The event as a structured-mode JSON body (`application/cloudevents+json`)."""
    unset = {name for name in OPTIONAL_ATTRIBUTES if getattr(event, name) is None}
    return event.model_dump_json(exclude=unset).encode()


def data_to_json(event: CloudEvent) -> bytes:
    """The event's data as JSON bytes (the body in binary mode)."""
    data = event.data
    return data.__pydantic_serializer__.to_json(data)


def invalid(exc: ValidationError, prefix: str = "") -> EventDecodeError:
    """An EventDecodeError listing every error in `exc` as `<prefix>.<path>: <message>`."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        if error["type"] == "json_invalid":
            return EventDecodeError.not_json(prefix or "body", error["msg"])
        path = ".".join([prefix, *map(str, error["loc"])] if prefix else map(str, error["loc"]))
        problems.append((path or "event", error["msg"]))
    return EventDecodeError.invalid_fields(problems)


def _envelope(attributes: Mapping[str, Any], payload: EventPayload) -> CloudEvent:
    fields = {name: value for name, value in attributes.items() if name in ENVELOPE_ATTRIBUTES}
    fields["datacontenttype"] = JSON
    fields["data"] = payload
    try:
        return CloudEvent.model_validate(fields)
    except ValidationError as exc:
        raise invalid(exc) from exc


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
