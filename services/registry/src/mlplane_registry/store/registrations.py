"""The registration jobs' SQL: versions waiting for their artifact to be read and verified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_registry.store.tables import RegistryTables

PENDING = "pending"
RUNNING = "running"


@dataclass(frozen=True, slots=True)
class RegistrationJob:
    """A version waiting for the registry to read its artifact (`source`)."""

    version_id: int
    team: str
    model: str
    version: int
    source: str
    inputs: dict[str, Any]
    """What the create request gave besides the source: `mlplane.*` tags, run_id, run_link."""
    attempts: int
    traceparent: str | None
    tracestate: str | None


class RegistrationStore:
    """Registration jobs on one session (the unit of work's)."""

    def __init__(self, session: AsyncSession, tables: RegistryTables) -> None:
        self._session = session
        self._t = tables

    async def insert(
        self,
        version_id: int,
        source: str,
        inputs: dict[str, Any],
        traceparent: str | None,
        tracestate: str | None,
    ) -> None:
        await self._session.execute(
            self._t.registrations.insert().values(
                version_id=version_id,
                source=source,
                inputs=inputs,
                traceparent=traceparent,
                tracestate=tracestate,
            )
        )

    async def claim(self, lease_s: float) -> RegistrationJob | None:
        """The oldest due job (or one whose worker's lease ran out), leased for `lease_s`.

        Competing workers skip rows another holds (`SKIP LOCKED`): each runs once.
        """
        r, v = self._t.registrations, self._t.versions
        now = func.now()
        due = (
            select(r.c.version_id)
            .where(
                or_(
                    and_(r.c.state == PENDING, r.c.due_at <= now),
                    and_(r.c.state == RUNNING, r.c.lease_until < now),
                )
            )
            .order_by(r.c.due_at, r.c.version_id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = (
            await self._session.execute(
                update(r)
                .where(r.c.version_id == due)
                .values(
                    state=RUNNING,
                    attempts=r.c.attempts + 1,
                    lease_until=now + text(f"interval '{float(lease_s)} seconds'"),
                )
                .returning(r)
            )
        ).first()
        if row is None:
            return None
        version = (
            await self._session.execute(
                select(v.c.team, v.c.model, v.c.version).where(v.c.id == row.version_id)
            )
        ).one()
        return RegistrationJob(
            version_id=row.version_id,
            team=version.team,
            model=version.model,
            version=version.version,
            source=row.source,
            inputs=dict(row.inputs),
            attempts=row.attempts,
            traceparent=row.traceparent,
            tracestate=row.tracestate,
        )

    async def renew(self, version_id: int, lease_s: float) -> bool:
        r = self._t.registrations
        done = await self._session.execute(
            update(r)
            .where(r.c.version_id == version_id, r.c.state == RUNNING)
            .values(lease_until=func.now() + text(f"interval '{float(lease_s)} seconds'"))
            .returning(r.c.version_id)
        )
        return done.first() is not None

    async def release(self, version_id: int, error: str | None, delay_s: float) -> None:
        """Put a job back, due again in `delay_s` (a passing failure, or a stop)."""
        r = self._t.registrations
        await self._session.execute(
            update(r)
            .where(r.c.version_id == version_id)
            .values(
                state=PENDING,
                lease_until=None,
                last_error=error,
                due_at=func.now() + text(f"interval '{float(delay_s)} seconds'"),
            )
        )

    async def finish(self, version_id: int) -> None:
        r = self._t.registrations
        await self._session.execute(delete(r).where(r.c.version_id == version_id))

    async def next_due_in(self) -> float | None:
        """Seconds until the next pending job is due (0 when one is), None when none waits."""
        r = self._t.registrations
        # Not GREATEST(0, ...) in SQL: it skips a NULL, so "none waits" read as "one is
        # due now", and an idle worker polled 20 times a second.
        found = (
            await self._session.execute(
                select(func.extract("epoch", func.min(r.c.due_at) - func.now())).where(
                    r.c.state == PENDING
                )
            )
        ).scalar_one_or_none()
        return None if found is None else max(0.0, float(found))
