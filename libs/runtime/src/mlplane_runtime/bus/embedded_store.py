"""The embedded transport's storage: its tables and every SQL statement it runs.

Tables live in the transport's own schema (default `bus`), created on start:
- `bindings(service, routing_key)`: which service queue receives which event type.
  Persisted so a message for a service that is not running waits for it;
- `deliveries`: one row per (message, bound service). A row is a queued message
  until a consumer leases it (`lease_owner`, `leased_until`), and is deleted when
  the handler succeeded (the ack). A retry pushes `available_at`; a dead letter
  keeps its row with `dead_letter_reason` / `dead_lettered_at` set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mlplane_runtime.db import check_schema_name

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.bindings (
    service text NOT NULL,
    routing_key text NOT NULL,
    PRIMARY KEY (routing_key, service)
);
CREATE TABLE IF NOT EXISTS {s}.deliveries (
    id bigserial PRIMARY KEY,
    service text NOT NULL,
    routing_key text NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    content_type text,
    message_id text,
    attempt integer NOT NULL DEFAULT 1,
    available_at timestamptz NOT NULL DEFAULT now(),
    lease_owner uuid,
    leased_until timestamptz,
    dead_letter_reason text,
    dead_lettered_at timestamptz,
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_queued
    ON {s}.deliveries (service, id) WHERE dead_lettered_at IS NULL;
CREATE INDEX IF NOT EXISTS deliveries_dead
    ON {s}.deliveries (service, dead_lettered_at, id) WHERE dead_lettered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_leased
    ON {s}.deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
"""


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A leased row, as the consumer loop hands it to a handler."""

    id: int
    service: str
    routing_key: str
    headers: Mapping[str, Any]
    body: bytes
    content_type: str | None
    message_id: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    routing_key: str
    message_id: str | None
    reason: str
    attempts: int
    dead_lettered_at: datetime
    headers: Mapping[str, Any]
    body: bytes


def _json_object(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return dict(loaded or {})


class DeliveryStore:
    """The SQL of the embedded transport, on a schema given once."""

    def __init__(self, schema: str) -> None:
        self.schema = check_schema_name(schema)
        # NOTIFY channel names are identifiers too (63 bytes at most); a clash
        # after truncation only costs a spurious wake-up.
        self.channel = f"bus_{self.schema}"[:63]

    def _sql(self, statement: str) -> Any:
        return text(statement.replace("{s}", self.schema))

    async def create_tables(self, conn: AsyncConnection) -> None:
        """CREATE ... IF NOT EXISTS, serialised so two transports starting at once agree."""
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"bus:{self.schema}"}
        )
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {self.schema}"))
        for statement in _DDL.split(";"):
            if statement.strip():
                await conn.execute(self._sql(statement))

    async def bind(self, conn: AsyncConnection, service: str, routing_keys: Sequence[str]) -> None:
        await conn.execute(
            self._sql(
                "INSERT INTO {s}.bindings (service, routing_key) VALUES (:service, :rk) "
                "ON CONFLICT DO NOTHING"
            ),
            [{"service": service, "rk": rk} for rk in routing_keys],
        )

    async def enqueue(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """One row per bound service for each message, ids in message order, plus NOTIFYs.

        `rows` items: routing_key, headers (JSON-able mapping), body, content_type,
        message_id. A routing key nobody is bound to inserts nothing.
        """
        await conn.execute(
            self._sql(
                "INSERT INTO {s}.deliveries "
                "(service, routing_key, headers, body, content_type, message_id) "
                "SELECT b.service, :routing_key, CAST(:headers AS jsonb), :body, "
                ":content_type, :message_id "
                "FROM {s}.bindings b WHERE b.routing_key = :routing_key ORDER BY b.service"
            ),
            [{**row, "headers": json.dumps(dict(row["headers"]), default=str)} for row in rows],
        )
        await conn.execute(
            self._sql(
                "SELECT pg_notify(:channel, service) FROM "
                "(SELECT DISTINCT service FROM {s}.bindings WHERE routing_key = ANY(:rks)) t"
            ),
            {"channel": self.channel, "rks": sorted({str(row["routing_key"]) for row in rows})},
        )

    async def lease(
        self, conn: AsyncConnection, service: str, owner: str, limit: int, lease_s: float
    ) -> list[StoredDelivery]:
        """Lease up to `limit` due rows of `service`, oldest id first (SKIP LOCKED)."""
        result = await conn.execute(
            self._sql(
                "WITH due AS ("
                " SELECT id FROM {s}.deliveries"
                " WHERE service = :service AND dead_lettered_at IS NULL"
                " AND available_at <= now() AND (leased_until IS NULL OR leased_until < now())"
                " ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED) "
                "UPDATE {s}.deliveries d SET lease_owner = CAST(:owner AS uuid), "
                "leased_until = now() + make_interval(secs => :lease_s) "
                "FROM due WHERE d.id = due.id "
                "RETURNING d.id, d.service, d.routing_key, d.headers, d.body, "
                "d.content_type, d.message_id, d.attempt"
            ),
            {"service": service, "owner": owner, "limit": limit, "lease_s": lease_s},
        )
        leased = [
            StoredDelivery(
                id=row.id,
                service=row.service,
                routing_key=row.routing_key,
                headers=_json_object(row.headers),
                body=bytes(row.body),
                content_type=row.content_type,
                message_id=row.message_id,
                attempt=row.attempt,
            )
            for row in result
        ]
        return sorted(leased, key=lambda d: d.id)

    async def seconds_until_due(self, conn: AsyncConnection, service: str) -> float | None:
        """Seconds until the next queued row of `service` may be leased; None if none."""
        result = await conn.execute(
            self._sql(
                "SELECT EXTRACT(EPOCH FROM min(GREATEST(available_at, "
                "COALESCE(leased_until, available_at))) - now()) FROM {s}.deliveries "
                "WHERE service = :service AND dead_lettered_at IS NULL"
            ),
            {"service": service},
        )
        value = result.scalar()
        return None if value is None else max(0.0, float(value))

    async def renew(self, conn: AsyncConnection, owner: str, lease_s: float) -> None:
        await conn.execute(
            self._sql(
                "UPDATE {s}.deliveries SET leased_until = now() + make_interval(secs => :lease_s) "
                "WHERE lease_owner = CAST(:owner AS uuid)"
            ),
            {"owner": owner, "lease_s": lease_s},
        )

    async def release(self, conn: AsyncConnection, owner: str) -> None:
        """Give back every row `owner` still leases (handlers that did not finish)."""
        await conn.execute(
            self._sql(
                "UPDATE {s}.deliveries SET lease_owner = NULL, leased_until = NULL "
                "WHERE lease_owner = CAST(:owner AS uuid)"
            ),
            {"owner": owner},
        )

    async def ack(self, conn: AsyncConnection, delivery_id: int, owner: str) -> None:
        await conn.execute(
            self._sql(
                "DELETE FROM {s}.deliveries WHERE id = :id AND lease_owner = CAST(:owner AS uuid)"
            ),
            {"id": delivery_id, "owner": owner},
        )

    async def retry_later(
        self, conn: AsyncConnection, delivery: StoredDelivery, owner: str, delay_s: float
    ) -> None:
        await conn.execute(
            self._sql(
                "UPDATE {s}.deliveries SET attempt = attempt + 1, "
                "available_at = now() + make_interval(secs => :delay_s), "
                "lease_owner = NULL, leased_until = NULL "
                "WHERE id = :id AND lease_owner = CAST(:owner AS uuid)"
            ),
            {"id": delivery.id, "owner": owner, "delay_s": delay_s},
        )
        # Wakes consumers elsewhere so they sleep until the new due time.
        await self.notify(conn, delivery.service)

    async def dead_letter(
        self, conn: AsyncConnection, delivery_id: int, owner: str, reason: str
    ) -> None:
        await conn.execute(
            self._sql(
                "UPDATE {s}.deliveries SET dead_letter_reason = :reason, "
                "dead_lettered_at = now(), lease_owner = NULL, leased_until = NULL "
                "WHERE id = :id AND lease_owner = CAST(:owner AS uuid)"
            ),
            {"id": delivery_id, "owner": owner, "reason": reason},
        )

    async def notify(self, conn: AsyncConnection, service: str) -> None:
        await conn.execute(
            text("SELECT pg_notify(:channel, :service)"),
            {"channel": self.channel, "service": service},
        )

    async def dead_letters(
        self, conn: AsyncConnection, service: str, limit: int
    ) -> list[StoredDeadLetter]:
        result = await conn.execute(
            self._sql(
                "SELECT id, routing_key, message_id, dead_letter_reason, attempt, "
                "dead_lettered_at, headers, body FROM {s}.deliveries "
                "WHERE service = :service AND dead_lettered_at IS NOT NULL "
                "ORDER BY dead_lettered_at, id LIMIT :limit"
            ),
            {"service": service, "limit": limit},
        )
        return [
            StoredDeadLetter(
                id=row.id,
                routing_key=row.routing_key,
                message_id=row.message_id,
                reason=row.dead_letter_reason,
                attempts=row.attempt,
                dead_lettered_at=row.dead_lettered_at,
                headers=_json_object(row.headers),
                body=bytes(row.body),
            )
            for row in result
        ]

    async def dead_letter_count(self, conn: AsyncConnection, service: str) -> int:
        result = await conn.execute(
            self._sql(
                "SELECT count(*) FROM {s}.deliveries "
                "WHERE service = :service AND dead_lettered_at IS NOT NULL"
            ),
            {"service": service},
        )
        return int(result.scalar_one())

    async def replay(self, conn: AsyncConnection, service: str, ids: Sequence[int] | None) -> int:
        """Queue dead letters (all, or those with `ids`) again at try 1; how many."""
        where_ids = "" if ids is None else " AND id = ANY(:ids)"
        result = await conn.execute(
            self._sql(
                "UPDATE {s}.deliveries SET dead_letter_reason = NULL, dead_lettered_at = NULL, "
                "attempt = 1, available_at = now(), lease_owner = NULL, leased_until = NULL "
                "WHERE service = :service AND dead_lettered_at IS NOT NULL"
                + where_ids
                + " RETURNING id"
            ),
            {"service": service} if ids is None else {"service": service, "ids": list(ids)},
        )
        count = len(result.fetchall())
        if count:
            await self.notify(conn, service)
        return count
