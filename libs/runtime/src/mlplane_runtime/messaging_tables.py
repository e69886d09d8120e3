"""The outbox and inbox tables, added to each service's own metadata (its own schema).

- `outbox`: events committed with a state change and not yet confirmed by the bus.
  `position` (bigserial) is the total order the relay publishes in; the relay
  deletes a row in the transaction that publishes it, so the table holds only what
  is still owed to the bus (see `relay.py`).
- `outbox_sequence`: the last per-subject sequence number handed out; the unit of
  work upserts it at commit, which also serialises producers of one subject so
  their rows get positions in sequence order.
- `inbox`: the `(source, id)` of every event a consumer has handled, written in the
  same transaction as the handler's effects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from mlplane_runtime.db import check_schema_name


@dataclass(frozen=True, slots=True)
class MessagingTables:
    """A service's messaging tables; `schema` is also the outbox NOTIFY channel's suffix."""

    schema: str
    outbox: Table
    outbox_sequence: Table
    inbox: Table

    @property
    def notify_channel(self) -> str:
        """The channel the unit of work NOTIFYs on commit and the relay LISTENs to."""
        return outbox_channel(self.schema)


def outbox_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the outbox in `schema`.

    Cut to PostgreSQL's 63-byte identifier limit (pg_notify refuses longer names);
    two long schema names sharing a prefix then only wake each other's relays.
    """
    return f"mlplane_outbox_{schema}"[:63]


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add `outbox`, `outbox_sequence` and `inbox` to `metadata`, in its schema.

    `metadata.schema` must be set (each service has its own schema). Raises
    `ValueError` when it is not, or when the tables were already added.
    """
    if metadata.schema is None:
        raise ValueError("a service's MetaData needs schema=...: messaging tables live in it")
    schema = check_schema_name(metadata.schema)
    outbox = Table(
        "outbox",
        metadata,
        Column("position", BigInteger, Identity(always=False), primary_key=True),
        Column("event_id", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=True),
        Column("sequence", BigInteger, nullable=True),
        # The message as published (binary content mode): encoded once at commit
        # so the relay only copies bytes.
        Column("headers", JSONB, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("content_type", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Was the relay's per-subject ordering probe; the claim now reads only the
        # primary key (see relay.py). Kept because existing schemas have it from
        # their migrations; dropping it is a migration of its own.
        Index("ix_outbox_subject_position", "subject", "position"),
    )
    outbox_sequence = Table(
        "outbox_sequence",
        metadata,
        Column("subject", Text, primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("source", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("source", "event_id", name="pk_inbox"),
    )
    return MessagingTables(
        schema=schema, outbox=outbox, outbox_sequence=outbox_sequence, inbox=inbox
    )
