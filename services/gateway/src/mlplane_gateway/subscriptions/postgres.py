"""The dispatcher's and the SSE stream's stores in PostgreSQL, each call its own short
transaction: `PostgresDeliveries` (claims, leases and outcomes of deliveries) and
`PostgresEventSource` (recorded events, woken when this process records one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

from mlplane_contracts.wire import event_from_json
from mlplane_runtime.db import Database
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.waiting import wait_set
from sqlalchemy import text

from mlplane_gateway.subscriptions.delivery import DeliveryResult, DueDelivery
from mlplane_gateway.subscriptions.domain import DeliveryStatus, EventFilter
from mlplane_gateway.subscriptions.store import (
    LOG_ENTRIES_KEPT,
    SubscriptionStore,
    subscription_from_row,
)
from mlplane_gateway.subscriptions.stream import StreamedEvent
from mlplane_gateway.subscriptions.tables import SubscriptionTables


class PostgresDeliveries:
    """The dispatcher's `DeliveryStore`: each call its own short transaction."""

    def __init__(self, database: Database, tables: SubscriptionTables) -> None:
        self._database = database
        self._t = tables
        schema = tables.deliveries.schema
        prefix = f'"{schema}".' if schema else ""
        # Oldest due first, but never more per sink than its room (its concurrency less
        # what this dispatcher has in flight there): a sink's backlog cannot take the
        # slots that other sinks' deliveries are due in. Ranked unlocked first (a window
        # cannot be taken FOR UPDATE), then locked with SKIP LOCKED and checked again.
        self._claim = text(
            "WITH ranked AS ("
            " SELECT d.id, d.next_attempt_at, s.sink_key, row_number() OVER"
            "  (PARTITION BY s.sink_key ORDER BY d.next_attempt_at, d.id) AS n"
            f" FROM {prefix}subscription_deliveries d"
            f" JOIN {prefix}subscriptions s ON s.id = d.subscription_id AND NOT s.disabled"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= now()),"
            " busy AS (SELECT * FROM unnest(CAST(:busy_keys AS text[]),"
            "  CAST(:busy_counts AS integer[])) AS b(sink_key, in_flight)),"
            " allowed AS (SELECT r.id FROM ranked r LEFT JOIN busy b ON b.sink_key = r.sink_key"
            "  WHERE r.n <= :per_sink - coalesce(b.in_flight, 0)"
            "  ORDER BY r.next_attempt_at, r.id LIMIT :limit),"
            f" due AS (SELECT d.id FROM {prefix}subscription_deliveries d"
            " WHERE d.id IN (SELECT id FROM allowed)"
            " AND d.status = 'pending' AND d.next_attempt_at <= now()"
            " FOR UPDATE OF d SKIP LOCKED),"
            f" claimed AS (UPDATE {prefix}subscription_deliveries d"
            " SET attempt = d.attempt + 1, updated_at = now(),"
            " next_attempt_at = now() + make_interval(secs => :lease_s)"
            " FROM due WHERE d.id = due.id"
            " RETURNING d.id, d.attempt, d.subscription_id, d.event_position,"
            " d.traceparent, d.tracestate)"
            " SELECT c.id AS delivery_id, c.attempt, c.traceparent AS delivery_traceparent,"
            " c.tracestate AS delivery_tracestate, e.body, s.*"
            f" FROM claimed c JOIN {prefix}subscriptions s ON s.id = c.subscription_id"
            f" JOIN {prefix}subscription_events e ON e.position = c.event_position"
        )
        # Only the holder of this attempt's claim writes: a worker whose lease ran out,
        # its delivery claimed again, must not overwrite the newer try. The log keeps
        # the last LOG_ENTRIES_KEPT attempts.
        self._finish_sql = text(
            f"UPDATE {prefix}subscription_deliveries SET status = :status,"
            " last_error = :error, updated_at = now(),"
            " next_attempt_at = CASE WHEN :status = 'pending'"
            " THEN now() + make_interval(secs => :delay_s) ELSE next_attempt_at END,"
            " log = (SELECT coalesce(jsonb_agg(x ORDER BY n), '[]'::jsonb)"
            "  FROM jsonb_array_elements(log) WITH ORDINALITY AS kept(x, n)"
            "  WHERE n > jsonb_array_length(log) - :keep)"
            "  || jsonb_build_array(CAST(:entry AS jsonb) || jsonb_build_object('at', now()))"
            " WHERE id = :id AND attempt = :attempt AND status = 'pending'"
        )
        # A claimed try's lease is its `next_attempt_at`, pushed on while it runs.
        self._renew_sql = text(
            f"UPDATE {prefix}subscription_deliveries"
            " SET next_attempt_at = now() + make_interval(secs => :lease_s)"
            " WHERE id = :id AND attempt = :attempt AND status = 'pending' RETURNING id"
        )
        # A try the dispatcher stopped before it ended: due again now, not counted.
        self._release_sql = text(
            f"UPDATE {prefix}subscription_deliveries"
            " SET next_attempt_at = now(), attempt = attempt - 1, updated_at = now()"
            " WHERE id = :id AND attempt = :attempt AND status = 'pending'"
        )

    async def claim_due(
        self, limit: int, lease_s: float, *, per_sink: int, in_flight: Mapping[str, int]
    ) -> Sequence[DueDelivery]:
        async with self._database.engine.begin() as conn:
            rows = await conn.execute(
                self._claim,
                {
                    "limit": limit,
                    "lease_s": lease_s,
                    "per_sink": per_sink,
                    "busy_keys": list(in_flight),
                    "busy_counts": list(in_flight.values()),
                },
            )
            return [
                DueDelivery(
                    id=row.delivery_id,
                    attempt=row.attempt,
                    subscription=subscription_from_row(row),
                    event=event_from_json(bytes(row.body)),
                    trace=JobTrace(row.delivery_traceparent, row.delivery_tracestate),
                )
                for row in rows
            ]

    async def renew(self, delivery: DueDelivery, lease_s: float) -> bool:
        async with self._database.engine.begin() as conn:
            renewed = await conn.execute(
                self._renew_sql,
                {"id": delivery.id, "attempt": delivery.attempt, "lease_s": lease_s},
            )
            return renewed.first() is not None

    async def release(self, delivery: DueDelivery) -> None:
        async with self._database.engine.begin() as conn:
            await conn.execute(self._release_sql, {"id": delivery.id, "attempt": delivery.attempt})

    async def record_delivered(self, delivery: DueDelivery, result: DeliveryResult) -> None:
        await self._finish(delivery, result, status=DeliveryStatus.DELIVERED, error=None)

    async def schedule_retry(
        self, delivery: DueDelivery, result: DeliveryResult, delay_s: float
    ) -> None:
        await self._finish(
            delivery, result, status=DeliveryStatus.PENDING, error=result.error, delay_s=delay_s
        )

    async def dead_letter(self, delivery: DueDelivery, result: DeliveryResult, reason: str) -> None:
        await self._finish(delivery, result, status=DeliveryStatus.DEAD, error=reason)

    async def _finish(
        self,
        delivery: DueDelivery,
        result: DeliveryResult,
        *,
        status: DeliveryStatus,
        error: str | None,
        delay_s: float = 0.0,
    ) -> None:
        entry = {
            "attempt": delivery.attempt,
            "outcome": result.outcome.value,
            "status": result.status,
            "error": result.error,
            "duration_ms": result.duration_ms,
        }
        async with self._database.engine.begin() as conn:
            await conn.execute(
                self._finish_sql,
                {
                    "id": delivery.id,
                    "attempt": delivery.attempt,
                    "status": status.value,
                    "error": error,
                    "delay_s": delay_s,
                    "entry": json.dumps(entry),
                    "keep": LOG_ENTRIES_KEPT - 1,
                },
            )


class PostgresEventSource:
    """The SSE stream's `EventSource`: recorded events, woken by `changed()` or a poll.

    Another gateway replica records events too; the poll is how its streams see them.
    """

    def __init__(self, database: Database, tables: SubscriptionTables, poll_s: float = 1.0) -> None:
        self._database = database
        self._tables = tables
        self._poll_s = poll_s
        self._changed = asyncio.Event()

    async def events_after(
        self, position: int, event_filter: EventFilter, limit: int
    ) -> Sequence[StreamedEvent]:
        async with self._database.reader_session() as session:
            return await SubscriptionStore(session, self._tables).events_after(
                position, event_filter, limit
            )

    async def wait(self, timeout_s: float) -> None:
        """Until `changed()` (an event recorded in this process) or the poll interval."""
        await wait_set(self._changed, min(timeout_s, self._poll_s))

    def changed(self) -> None:
        """Wake every waiting stream (call on the event loop, once the event is committed)."""
        # Each wake gets a fresh Event: waiters hold the one that was current.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
