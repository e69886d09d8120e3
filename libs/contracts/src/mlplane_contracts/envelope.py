"""The CloudEvents 1.0 envelope every mlplane event travels in.

`CloudEvent.data` is one of the payload models registered in `events.py`; the
envelope's `type` decides which. Extensions: `traceparent` / `tracestate`
(distributed tracing) and `sequence` (per-subject order, assigned by the outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, TypeVar
from uuid import uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    model_validator,
)

from mlplane_contracts.types import Timestamp

SPEC_VERSION: Final = "1.0"
JSON: Final = "application/json"
SCHEMA_BASE_URI: Final = "https://mlplane.io/schemas/events"


class EventPayload(BaseModel):
    """Base of every event's `data`. Subclasses set `event_type` and register."""

    # JSON has no NaN or infinity: refusing them keeps every payload round-trippable.
    # Attribute docstrings become field descriptions in the published JSON Schemas.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    event_type: ClassVar[str]

    @classmethod
    def dataschema(cls) -> str:
        return f"{SCHEMA_BASE_URI}/{cls.event_type}.json"


_PAYLOADS: dict[str, type[EventPayload]] = {}
_P = TypeVar("_P", bound=type[EventPayload])


def register_payload(cls: _P) -> _P:
    """Class decorator: make `cls` the payload model of `cls.event_type`."""
    existing = _PAYLOADS.get(cls.event_type)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.event_type!r} already registered by {existing!r}")
    _PAYLOADS[cls.event_type] = cls
    return cls


def registered_payloads() -> dict[str, type[EventPayload]]:
    """Every known event type and its payload model, in registration order."""
    return dict(_PAYLOADS)


def payload_model_for(event_type: str) -> type[EventPayload] | None:
    """The payload model registered for `event_type`, or None (no copy: per-message use)."""
    return _PAYLOADS.get(event_type)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event whose data is a registered mlplane payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str = Field(default_factory=lambda: str(uuid4()), min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: Timestamp = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = JSON
    dataschema: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    sequence: int | None = Field(default=None, ge=0, le=2**63 - 1)
    data: SerializeAsAny[EventPayload]

    @model_validator(mode="before")
    @classmethod
    def _data_as_registered_payload(cls, values: Any) -> Any:
        """Validate raw `data` with the payload model that `type` names."""
        if not isinstance(values, dict):
            return values
        event_type = values.get("type")
        data = values.get("data")
        model = _PAYLOADS.get(event_type) if isinstance(event_type, str) else None
        if model is None:
            raise ValueError(f"unknown event type {event_type!r}")
        if not isinstance(data, model):
            values = {**values, "data": model.model_validate(data)}
        return values


def new_event(
    data: EventPayload,
    *,
    source: str,
    subject: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    sequence: int | None = None,
) -> CloudEvent:
    """A fresh event (new id, current time) for `data`; type and dataschema come from it."""
    return CloudEvent(
        source=source,
        type=data.event_type,
        subject=subject,
        dataschema=data.dataschema(),
        traceparent=traceparent,
        tracestate=tracestate,
        sequence=sequence,
        data=data,
    )
