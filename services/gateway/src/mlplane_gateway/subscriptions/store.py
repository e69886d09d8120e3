"""Subscriptions, the events they get and their deliveries, in PostgreSQL.

`SubscriptionStore` works inside a unit of work (the caller commits); the
dispatcher's and the SSE stream's stores, which open their own short transactions,
are in `postgres.py`. Tables: `tables.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.wire import event_to_json
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

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
    "SubscriptionStore",
    "SubscriptionTables",
    "define_subscription_tables",
    "subscription_event_handler",
]


def subscription_from_row(row: Any) -> Subscription:
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
        name=row.name,
        description=row.description,
        mlflow_events=tuple(row.mlflow_events or ()),
        updated_at=row.updated_at,
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
                name=s.name,
                description=s.description,
                mlflow_events=list(s.mlflow_events) if s.mode is ContentMode.MLFLOW else None,
                updated_at=s.updated_at,
            )
        )

    async def replace(self, subscription: Subscription) -> None:
        """Write an existing subscription's changeable fields (an MLflow webhook's update)."""
        t = self._t.subscriptions
        s = subscription
        await self._session.execute(
            update(t)
            .where(t.c.team == s.team, t.c.id == s.id)
            .values(
                sink_url=s.sink_url,
                sink_key=sink_key(s.sink_url),
                types=list(s.types),
                secret=s.secret,
                disabled=s.disabled,
                name=s.name,
                description=s.description,
                mlflow_events=list(s.mlflow_events),
                updated_at=s.updated_at,
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
        return None if row is None else subscription_from_row(row)

    async def find(self, subscription_id: str) -> Subscription | None:
        """The subscription of whichever team (the caller checks it may see it)."""
        t = self._t.subscriptions
        row = (await self._session.execute(select(t).where(t.c.id == subscription_id))).first()
        return None if row is None else subscription_from_row(row)

    async def of_team(self, team: str) -> list[Subscription]:
        t = self._t.subscriptions
        rows = await self._session.execute(
            select(t).where(t.c.team == team).order_by(t.c.created_at, t.c.id)
        )
        return [subscription_from_row(row) for row in rows]

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
