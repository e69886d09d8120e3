"""The subscription tables, added to the gateway's `MetaData` (the core owns its migrations).

- `subscriptions`: a team's sink (and the server it reaches, `sink_key`), filters
  and secret.
- `subscription_events`: each platform event the gateway received, once, in
  arrival order (`position`): what deliveries send and what the SSE stream
  replays after `Last-Event-ID`.
- `subscription_deliveries`: one row per (subscription, event): attempts so far,
  when the next is due, status pending | delivered | dead, the last error, and a
  log of the last attempts (JSON array).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


@dataclass(frozen=True, slots=True)
class SubscriptionTables:
    subscriptions: Table
    events: Table
    deliveries: Table


def define_subscription_tables(metadata: MetaData) -> SubscriptionTables:
    """The three tables, added to `metadata` (its schema is theirs)."""
    subscriptions = Table(
        "subscriptions",
        metadata,
        Column("id", Text, primary_key=True),
        Column("team", Text, nullable=False),
        Column("sink_url", Text, nullable=False),
        # `domain.sink_key(sink_url)`: what delivery concurrency is counted by.
        Column("sink_key", Text, nullable=False),
        Column("types", ARRAY(Text), nullable=False),
        Column("subject_prefix", Text, nullable=True),
        Column("secret", Text, nullable=False),
        Column("mode", Text, nullable=False, server_default="binary"),
        Column("disabled", Boolean, nullable=False, server_default="false"),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # MLflow webhooks (mode `mlflow`) only: what MLflow's API names and filters by.
        Column("name", Text, nullable=True),
        Column("description", Text, nullable=True),
        Column("mlflow_events", ARRAY(Text), nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=True),
        Index("ix_subscriptions_team", "team", "created_at"),
    )
    events = Table(
        "subscription_events",
        metadata,
        Column("position", BigInteger, Identity(always=False), primary_key=True),
        Column("event_id", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=True),
        Column("team", Text, nullable=True),
        Column("body", LargeBinary, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("source", "event_id", name="uq_subscription_events_source_id"),
        Index("ix_subscription_events_team_position", "team", "position"),
    )
    deliveries = Table(
        "subscription_deliveries",
        metadata,
        Column("id", BigInteger, Identity(always=False), primary_key=True),
        Column(
            "subscription_id",
            Text,
            ForeignKey("subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column(
            "event_position",
            BigInteger,
            ForeignKey("subscription_events.position", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("event_id", Text, nullable=False),
        Column("attempt", Integer, nullable=False, server_default="0"),
        Column("status", Text, nullable=False, server_default="pending"),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False),
        Column("last_error", Text, nullable=True),
        Column("log", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        # W3C trace context of the span that recorded it: each try continues that trace.
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("subscription_id", "event_position", name="uq_subscription_deliveries"),
        CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name="ck_subscription_deliveries_status"
        ),
        Index(
            "ix_subscription_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_subscription_deliveries_subscription", "subscription_id", "status", "id"),
    )
    return SubscriptionTables(subscriptions, events, deliveries)
