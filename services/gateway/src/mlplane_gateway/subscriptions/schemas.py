"""HTTP request and response models of the subscription routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mlplane_contracts.types import DNS_LABEL_PATTERN
from pydantic import BaseModel, ConfigDict, Field

from mlplane_gateway.subscriptions.domain import (
    MAX_TYPE_PREFIXES,
    MAX_URL_LENGTH,
    ContentMode,
    DeliveryStatus,
    Subscription,
)
from mlplane_gateway.subscriptions.store import DeliveryRecord

# Printable text only: PostgreSQL text refuses NUL, and these end up in logs.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
TypePrefix = Annotated[str, Field(min_length=1, max_length=255, pattern=_PRINTABLE)]


class ProtocolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_mode: ContentMode = ContentMode.BINARY
    """CloudEvents HTTP binding: `binary` (ce-* headers) or `structured` (JSON envelope)."""


class SubscriptionCreate(BaseModel):
    """Shaped after the CloudEvents Subscriptions API: a sink and filters."""

    model_config = ConfigDict(extra="forbid")

    sink: str = Field(min_length=1, max_length=MAX_URL_LENGTH, pattern=_PRINTABLE)
    """Where deliveries are POSTed: https://, or http:// to an allowlisted address."""
    types: list[TypePrefix] = Field(default_factory=list, max_length=MAX_TYPE_PREFIXES)
    """CloudEvent `type` prefixes (e.g. `io.mlplane.model.`); empty: every type."""
    subject_prefix: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=_PRINTABLE
    )
    protocol_settings: ProtocolSettings = Field(default_factory=ProtocolSettings)
    team: str | None = Field(default=None, min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Only the operator names it; a team's credential subscribes for its own team."""


class SubscriptionOut(BaseModel):
    id: str
    team: str
    sink: str
    types: list[str]
    subject_prefix: str | None
    protocol_settings: ProtocolSettings
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionOut:
        return cls(
            id=subscription.id,
            team=subscription.team,
            sink=subscription.sink_url,
            types=list(subscription.types),
            subject_prefix=subscription.subject_prefix,
            protocol_settings=ProtocolSettings(content_mode=subscription.mode),
            disabled=subscription.disabled,
            created_at=subscription.created_at,
        )


class SubscriptionCreated(SubscriptionOut):
    secret: str
    """Signs every delivery (`X-Mlplane-Signature`); shown in this answer only."""


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    log: list[dict[str, Any]]
    """The last attempts: attempt, outcome, HTTP status, error, duration_ms, at."""

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=record.id,
            event_id=record.event_id,
            status=record.status,
            attempts=record.attempt,
            next_attempt_at=(
                record.next_attempt_at if record.status is DeliveryStatus.PENDING else None
            ),
            last_error=record.last_error,
            log=record.log,
        )


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
