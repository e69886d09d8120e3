"""Subscriptions, the events they get and their deliveries, in PostgreSQL: all their SQL.

`SubscriptionStore` works inside a unit of work (the caller commits);
`PostgresDeliveries` is the dispatcher's store and `PostgresEventSource` the SSE
stream's, each opening its own short transactions. Tables: `tables.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.wire import event_from_json, event_to_json
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.db import Database
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork
from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_gateway.subscriptions.delivery import DeliveryResult, DueDelivery
from mlplane_gateway.subscriptions.domain import (
    ContentMode,
    DeliveryStatus,
    EventFilter,
    Subscription,
    event_team,
    matches,
    sink_key,
)
from mlplane_gateway.subscriptions.stream import StreamedEvent
from mlplane_gateway.subscriptions.tables import SubscriptionTables, define_subscription_tables

LOG_ENTRIES_KEPT: Final = 20
# The first key of the advisory lock taken per team while its subscriptions are
# counted (the second is the team's hash): one lock class of this service's own.
_TEAM_SUBSCRIPTIONS_LOCK: Final = 0x5B5C

__all__ = [
    "PostgresDeliveries",
    "PostgresEventSource",
    "SubscriptionStore",
    "SubscriptionTables",
    "define_subscription_tables",
    "subscription_event_handler",
]


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        team=row.team,
        sink_url=row.sink_url,
        types=tuple(row.types),
        subject_prefix=row.subject_prefix,
        secret=row.secret,
        created_at=row.created_at,
        disabled=row.disabled,
        mode=ContentMode(row.mode),
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as the ledger shows it (dead-letter list, delivery log)."""

    id: int
    subscription_id: str
    event_id: str
    attempt: int
    status: DeliveryStatus
    next_attempt_at: datetime
    last_error: str | None
    log: list[dict[str, Any]]


class SubscriptionStore:
    """Subscriptions and recorded events inside one unit of work (which commits)."""

    def __init__(self, session: AsyncSession, tables: SubscriptionTables) -> None:
        self._session = session
        self._t = tables

    async def add(self, subscription: Subscription, created_by: str) -> None:
        s = subscription
        await self._session.execute(
            insert(self._t.subscriptions).values(
                id=s.id,
                team=s.team,
                sink_url=s.sink_url,
                sink_key=sink_key(s.sink_url),
                types=list(s.types),
                subject_prefix=s.subject_prefix,
                secret=s.secret,
                mode=s.mode.value,
                disabled=s.disabled,
                created_by=created_by,
                created_at=s.created_at,
            )
        )

    async def count_of_team_locked(self, team: str) -> int:
        """How many subscriptions `team` has, holding the team's lock until the unit of
        work ends: concurrent creates for one team count one after the other, so none
        can pass a limit the other's insert reaches."""
        t = self._t.subscriptions
        await self._session.execute(
            select(func.pg_advisory_xact_lock(_TEAM_SUBSCRIPTIONS_LOCK, func.hashtext(team)))
        )
        count = await self._session.scalar(
            select(func.count()).select_from(t).where(t.c.team == team)
        )
        return int(count or 0)

    async def get(self, team: str, subscription_id: str) -> Subscription | None:
        t = self._t.subscriptions
        row = (
            await self._session.execute(
                select(t).where(t.c.team == team, t.c.id == subscription_id)
            )
        ).first()
        return None if row is None else _subscription(row)

    async def find(self, subscription_id: str) -> Subscription | None:
        """The subscription of whichever team (the caller checks it may see it)."""
        t = self._t.subscriptions
        row = (await self._session.execute(select(t).where(t.c.id == subscription_id))).first()
        return None if row is None else _subscription(row)

    async def of_team(self, team: str) -> list[Subscription]:
        t = self._t.subscriptions
        rows = await self._session.execute(
            select(t).where(t.c.team == team).order_by(t.c.created_at, t.c.id)
        )
        return [_subscription(row) for row in rows]

    async def remove(self, team: str, subscription_id: str) -> bool:
        t = self._t.subscriptions
        result = await self._session.execute(
            delete(t).where(t.c.team == team, t.c.id == subscription_id).returning(t.c.id)
        )
        return result.first() is not None

    async def set_disabled(self, team: str, subscription_id: str, disabled: bool) -> bool:
        t = self._t.subscriptions
        result = await self._session.execute(
            update(t)
            .where(t.c.team == team, t.c.id == subscription_id)
            .values(disabled=disabled)
            .returning(t.c.id)
        )
        return result.first() is not None

    async def record_event(self, event: CloudEvent) -> int | None:
        """Keep `event` (once per source and id) and queue a delivery per matching subscription,
        each in the current trace (its tries continue it).

        Returns its position, or None when it was recorded before (a redelivery).
        """
        e = self._t.events
        team = event_team(event)
        position = (
            await self._session.execute(
                pg_insert(e)
                .values(
                    event_id=event.id,
                    source=event.source,
                    type=event.type,
                    subject=event.subject,
                    team=team,
                    body=event_to_json(event),
                )
                .on_conflict_do_nothing(constraint="uq_subscription_events_source_id")
                .returning(e.c.position)
            )
        ).scalar()
        if position is None or team is None:
            return None if position is None else int(position)
        due = [s for s in await self.of_team(team) if matches(s, event)]
        if due:
            trace = JobTrace.current()
            await self._session.execute(
                insert(self._t.deliveries).values(
                    [
                        {
                            "subscription_id": s.id,
                            "event_position": position,
                            "event_id": event.id,
                            "next_attempt_at": func.now(),
                            "traceparent": trace.traceparent,
                            "tracestate": trace.tracestate,
                        }
                        for s in due
                    ]
                )
            )
        return int(position)

    async def events_after(
        self, position: int, event_filter: EventFilter, limit: int
    ) -> list[StreamedEvent]:
        """Events past `position` that `event_filter` accepts, oldest first."""
        e = self._t.events
        conditions = [e.c.position > position]
        if event_filter.team is not None:
            conditions.append(e.c.team == event_filter.team)
        if event_filter.subject_prefix is not None:
            conditions.append(func.starts_with(e.c.subject, event_filter.subject_prefix))
        rows = await self._session.execute(
            select(e.c.position, e.c.event_id, e.c.type, e.c.subject, e.c.team, e.c.body)
            .where(and_(*conditions))
            .order_by(e.c.position)
            .limit(limit)
        )
        # Type prefixes are few; filtering them here keeps one query shape.
        return [
            StreamedEvent(row.position, row.event_id, row.type, bytes(row.body))
            for row in rows
            if event_filter.accepts(row.type, row.subject, row.team)
        ]

    async def deliveries(
        self, subscription_id: str, status: DeliveryStatus | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """The delivery log of a subscription (newest first); `status=DEAD`: its dead letters."""
        d = self._t.deliveries
        query = select(d).where(d.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(d.c.status == status.value)
        rows = await self._session.execute(query.order_by(d.c.id.desc()).limit(limit))
        return [
            DeliveryRecord(
                id=row.id,
                subscription_id=row.subscription_id,
                event_id=row.event_id,
                attempt=row.attempt,
                status=DeliveryStatus(row.status),
                next_attempt_at=row.next_attempt_at,
                last_error=row.last_error,
                log=list(row.log),
            )
            for row in rows
        ]

    async def redeliver(self, subscription_id: str, delivery_id: int) -> bool:
        """A dead letter back in the queue, due now, with a fresh count of attempts."""
        d = self._t.deliveries
        result = await self._session.execute(
            update(d)
            .where(
                d.c.id == delivery_id,
                d.c.subscription_id == subscription_id,
                d.c.status == DeliveryStatus.DEAD.value,
            )
            .values(status="pending", attempt=0, next_attempt_at=func.now(), updated_at=func.now())
            .returning(d.c.id)
        )
        return result.first() is not None


def subscription_event_handler(
    tables: SubscriptionTables, on_recorded: Callable[[], None] | None = None
) -> EventHandler:
    """The bus handler recording every event for subscriptions, in the consumer's unit of work.

    `on_recorded` is called once that transaction commits a new event (to wake the
    dispatcher and the streams at once rather than at their next poll).
    """

    async def handle(event: CloudEvent, uow: UnitOfWork) -> None:
        position = await SubscriptionStore(uow.session, tables).record_event(event)
        if position is not None and on_recorded is not None:
            uow.after_commit(on_recorded)

    return handle


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
                    subscription=_subscription(row),
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), min(timeout_s, self._poll_s))

    def changed(self) -> None:
        """Wake every waiting stream (call on the event loop, once the event is committed)."""
        # Each wake gets a fresh Event: waiters hold the one that was current.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
