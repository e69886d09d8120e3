"""Helpers for the outbox, relay and inbox tests: tables in a test schema, a payload,
and a recording transport.

The recording transport is a fake of the bus only: the database side of every test
stays the real PostgreSQL. Payloads are real contract types (a test must not
register its own event types: the contracts' tests check the registry is exactly
DESIGN.md's list).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlplane_contracts.amqp import decode
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.events import ModelAliasChanged
from mlplane_runtime.bus.base import (
    DeadLetter,
    DeliveryHandler,
    InboundMessage,
    OutboundMessage,
)
from mlplane_runtime.db import Database
from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import MetaData, func, select


def alias_changed(version: int, model: str = "fraud") -> ModelAliasChanged:
    """A small valid payload; `version` makes each one distinguishable."""
    return ModelAliasChanged(
        team="risk",
        model=model,
        alias="champion",
        version=version,
        changed_by="service:tests",
        changed_at=datetime.now(UTC),
    )


async def create_messaging_tables(
    database: Database, schema: str
) -> tuple[MetaData, MessagingTables]:
    """A service metadata in `schema` with the messaging tables, created in the database."""
    metadata = MetaData(schema=schema)
    tables = messaging_tables(metadata)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return metadata, tables


async def outbox_size(database: Database, tables: MessagingTables) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(tables.outbox))).scalar())


def inbound(message: OutboundMessage, attempt: int = 1) -> InboundMessage:
    """What a consumer receives for a published message."""
    return InboundMessage(
        body=message.body,
        headers=dict(message.headers),
        content_type=message.content_type,
        message_id=message.message_id,
        routing_key=message.routing_key,
        attempt=attempt,
    )


@dataclass
class RecordingTransport:
    """A `Transport` that records published batches; it can be told to fail publishing."""

    failing: bool = False
    confirm_delay_s: float = 0.0
    """Each publish waits up to this long (uniformly random), as broker confirms do."""
    publish_calls: int = 0
    published: list[OutboundMessage] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        self.publish_calls += 1
        # Let other tasks (other relays) run between claim and confirm, as a
        # broker round trip would.
        await asyncio.sleep(random.uniform(0, self.confirm_delay_s))
        if self.failing:
            raise ConnectionError("broker unreachable (test)")
        self.published.extend(messages)

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        raise NotImplementedError

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        return []

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        return 0

    async def ping(self) -> bool:
        return not self.failing

    def events(self) -> list[CloudEvent]:
        """The published messages decoded, in publish order."""
        return [decode(m.headers, m.body, m.content_type) for m in self.published]

    def ids(self) -> list[str]:
        return [m.message_id for m in self.published]
