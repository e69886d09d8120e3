"""All of the drift service's SQL: versions, references, window policies, windows and
their partial summaries, reports and alert states.

Windows live here, never in a process's memory: any replica's intake appends a partial
summary to the open window of its key (the window row is locked for that short
transaction, so two replicas adding to one window count right), and any replica's
verdict worker closes windows whose time is up and claims closed ones, oldest first per
key, under a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from mlplane_runtime.jobs import JobTrace
from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_drift.domain.windows import WindowPolicy, is_due
from mlplane_drift.store.rows import ReferenceRow, ReportRow, WindowRow
from mlplane_drift.store.tables import OPEN_WINDOW, DriftTables

OPEN, CLOSED, JUDGING, DONE, FAILED = "open", "closed", "judging", "done", "failed"
_OPEN_ATTEMPTS = 3


class DriftStore:
    def __init__(self, session: AsyncSession, tables: DriftTables) -> None:
        self._session = session
        self._t = tables

    # -- versions -------------------------------------------------------------------

    async def record_version(
        self, team: str, model: str, version: int, registered_at: datetime
    ) -> None:
        v = self._t.versions
        await self._session.execute(
            pg_insert(v)
            .values(team=team, model=model, version=version, registered_at=registered_at)
            .on_conflict_do_nothing()
        )

    async def version_exists(self, team: str, model: str, version: int) -> bool:
        v = self._t.versions
        found = await self._session.execute(
            select(v.c.version).where(v.c.team == team, v.c.model == model, v.c.version == version)
        )
        return found.first() is not None

    async def lock_version(self, team: str, model: str, version: int) -> bool:
        """Lock the version's row until the transaction ends; False when it is unknown."""
        v = self._t.versions
        found = await self._session.execute(
            select(v.c.version)
            .where(v.c.team == team, v.c.model == model, v.c.version == version)
            .with_for_update()
        )
        return found.first() is not None

    # -- samples kept for a reference -----------------------------------------------

    async def add_reference_samples(
        self, team: str, model: str, version: int, rows: int, data: bytes
    ) -> int:
        """Keep a batch for the version's reference; how many rows are kept now."""
        t = self._t.reference_samples
        await self._session.execute(
            t.insert().values(team=team, model=model, version=version, rows=rows, data=data)
        )
        total = await self._session.execute(
            select(func.coalesce(func.sum(t.c.rows), 0)).where(
                t.c.team == team, t.c.model == model, t.c.version == version
            )
        )
        return int(total.scalar_one())

    async def reference_samples(self, team: str, model: str, version: int) -> list[bytes]:
        t = self._t.reference_samples
        rows = await self._session.execute(
            select(t.c.data)
            .where(t.c.team == team, t.c.model == model, t.c.version == version)
            .order_by(t.c.id)
        )
        return [bytes(row.data) for row in rows]

    async def drop_reference_samples(self, team: str, model: str, version: int) -> None:
        t = self._t.reference_samples
        await self._session.execute(
            t.delete().where(t.c.team == team, t.c.model == model, t.c.version == version)
        )

    # -- references -----------------------------------------------------------------

    async def put_reference(
        self,
        team: str,
        model: str,
        version: int,
        *,
        profile_uri: str,
        source: str,
        rows: int,
        features: list[dict[str, Any]],
        created_by: str,
        now: datetime,
    ) -> ReferenceRow:
        r = self._t.references
        values = {
            "profile_uri": profile_uri,
            "source": source,
            "rows": rows,
            "features": features,
            "created_by": created_by,
            "created_at": now,
        }
        statement = pg_insert(r).values(team=team, model=model, version=version, **values)
        row = (
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=["team", "model", "version"], set_=values
                ).returning(r)
            )
        ).one()
        return ReferenceRow.of(row)

    async def reference(self, team: str, model: str, version: int) -> ReferenceRow | None:
        r = self._t.references
        row = (
            await self._session.execute(
                select(r).where(r.c.team == team, r.c.model == model, r.c.version == version)
            )
        ).first()
        return None if row is None else ReferenceRow.of(row)

    # -- window policies ------------------------------------------------------------

    async def window_policy(self, team: str, model: str, environment: str) -> WindowPolicy | None:
        p = self._t.window_policies
        row = (
            await self._session.execute(
                select(p.c.max_count, p.c.max_seconds).where(
                    p.c.team == team, p.c.model == model, p.c.environment == environment
                )
            )
        ).first()
        return None if row is None else WindowPolicy(row.max_count, row.max_seconds)

    async def put_window_policy(
        self, team: str, model: str, environment: str, policy: WindowPolicy, by: str
    ) -> None:
        p = self._t.window_policies
        values = {
            "max_count": policy.max_count,
            "max_seconds": policy.max_seconds,
            "updated_by": by,
            "updated_at": func.now(),
        }
        await self._session.execute(
            pg_insert(p)
            .values(team=team, model=model, environment=environment, **values)
            .on_conflict_do_update(index_elements=["team", "model", "environment"], set_=values)
        )

    # -- windows --------------------------------------------------------------------

    async def append_partial(
        self,
        team: str,
        model: str,
        version: int,
        environment: str,
        *,
        profile_uri: str,
        sample_count: int,
        summary: bytes,
        policy: WindowPolicy,
        now: datetime,
        trace: JobTrace = JobTrace(),
    ) -> WindowRow:
        """Add one batch's summary to the open window of its key (opening one if none is
        open), and close the window when the batch fills it. Returns the window after.

        A window built on another profile (the reference was replaced) or whose time is
        up is closed first, and the batch opens the next one.
        """
        window = await self._open_window(team, model, version, environment, profile_uri, now)
        if window is None:
            window = await self._new_window(
                team, model, version, environment, profile_uri, policy, now
            )
        w = self._t.windows
        await self._session.execute(
            self._t.partials.insert().values(
                window_id=window.id, sample_count=sample_count, summary=summary
            )
        )
        total = w.c.sample_count + sample_count
        fills = and_(w.c.max_count.is_not(None), total >= w.c.max_count)
        row = (
            await self._session.execute(
                update(w)
                .where(w.c.id == window.id)
                .values(
                    sample_count=total,
                    state=case((fills, CLOSED), else_=OPEN),
                    closed_at=case((fills, now), else_=None),
                    traceparent=case((fills, trace.traceparent), else_=w.c.traceparent),
                    tracestate=case((fills, trace.tracestate), else_=w.c.tracestate),
                )
                .returning(w)
            )
        ).one()
        return WindowRow.of(row)

    async def _open_window(
        self,
        team: str,
        model: str,
        version: int,
        environment: str,
        profile_uri: str,
        now: datetime,
    ) -> WindowRow | None:
        w = self._t.windows
        row = (
            await self._session.execute(
                select(w)
                .where(
                    w.c.team == team,
                    w.c.model == model,
                    w.c.version == version,
                    w.c.environment == environment,
                    w.c.state == OPEN,
                )
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        window = WindowRow.of(row)
        if window.profile_uri == profile_uri and not is_due(window.closes_at, now):
            return window
        closed_at = window.closes_at if is_due(window.closes_at, now) else now
        await self._session.execute(
            update(w).where(w.c.id == window.id).values(state=CLOSED, closed_at=closed_at)
        )
        return None

    async def _new_window(
        self,
        team: str,
        model: str,
        version: int,
        environment: str,
        profile_uri: str,
        policy: WindowPolicy,
        now: datetime,
    ) -> WindowRow:
        w = self._t.windows
        for _ in range(_OPEN_ATTEMPTS):
            row = (
                await self._session.execute(
                    pg_insert(w)
                    .values(
                        team=team,
                        model=model,
                        version=version,
                        environment=environment,
                        state=OPEN,
                        profile_uri=profile_uri,
                        max_count=policy.max_count,
                        opened_at=now,
                        closes_at=policy.closes_at(now),
                    )
                    .on_conflict_do_nothing(
                        index_elements=["team", "model", "version", "environment"],
                        index_where=OPEN_WINDOW,
                    )
                    .returning(w)
                )
            ).first()
            if row is not None:
                return WindowRow.of(row)
            # Another replica opened it meanwhile (its insert committed): take that one.
            found = await self._open_window(team, model, version, environment, profile_uri, now)
            if found is not None:
                return found
        raise RuntimeError(f"no open window for {team}/{model}/{version}/{environment}")

    async def close_due_windows(self, now: datetime, limit: int = 100) -> int:
        """Close open windows whose time is up (those intake holds now are left for the
        next round); how many."""
        w = self._t.windows
        due = (
            select(w.c.id)
            .where(w.c.state == OPEN, w.c.closes_at <= now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self._session.execute(
            update(w)
            .where(w.c.id.in_(due.scalar_subquery()))
            .values(state=CLOSED, closed_at=w.c.closes_at)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def claim_window(self, now: datetime, lease_s: float) -> WindowRow | None:
        """Take the oldest closed window (or one whose judge's lease ran out) whose key has
        no older window still to judge: hysteresis goes from window to window in order."""
        w = self._t.windows
        earlier = w.alias("earlier")
        claimable = or_(w.c.state == CLOSED, and_(w.c.state == JUDGING, w.c.lease_until < now))
        older_pending = exists(
            select(earlier.c.id).where(
                earlier.c.team == w.c.team,
                earlier.c.model == w.c.model,
                earlier.c.version == w.c.version,
                earlier.c.environment == w.c.environment,
                earlier.c.id < w.c.id,
                earlier.c.state.in_([CLOSED, JUDGING]),
            )
        )
        candidate = (
            await self._session.execute(
                select(w.c.id)
                .where(claimable, ~older_pending)
                .order_by(w.c.id)
                .limit(1)
                .with_for_update(skip_locked=True, of=w)
            )
        ).first()
        if candidate is None:
            return None
        row = (
            await self._session.execute(
                update(w)
                .where(w.c.id == candidate.id)
                .values(
                    state=JUDGING,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=w.c.attempts + 1,
                )
                .returning(w)
            )
        ).one()
        return WindowRow.of(row)

    async def renew(self, window_id: int, now: datetime, lease_s: float) -> bool:
        w = self._t.windows
        result = await self._session.execute(
            update(w)
            .where(w.c.id == window_id, w.c.state == JUDGING)
            .values(lease_until=now + timedelta(seconds=lease_s))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, window_id: int) -> None:
        w = self._t.windows
        await self._session.execute(
            update(w)
            .where(w.c.id == window_id, w.c.state == JUDGING)
            .values(state=CLOSED, lease_until=None)
        )

    async def finish_window(self, window_id: int, *, error: str | None = None) -> bool:
        """Mark a judged window done (or failed, with `error`); False when it is not being
        judged any more (another worker took it over)."""
        w = self._t.windows
        result = await self._session.execute(
            update(w)
            .where(w.c.id == window_id, w.c.state == JUDGING)
            .values(state=DONE if error is None else FAILED, lease_until=None, error=error)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def windows_to_compact(self, over: int, limit: int = 10) -> list[tuple[int, str]]:
        """(id, profile URI) of open windows holding more than `over` partial summaries."""
        p, w = self._t.partials, self._t.windows
        rows = await self._session.execute(
            select(w.c.id, w.c.profile_uri)
            .join(p, p.c.window_id == w.c.id)
            .where(w.c.state == OPEN)
            .group_by(w.c.id, w.c.profile_uri)
            .having(func.count() > over)
            .limit(limit)
        )
        return [(row.id, row.profile_uri) for row in rows]

    async def take_partials(self, window_id: int, limit: int) -> list[tuple[int, int, bytes]]:
        """Up to `limit` of the window's oldest partials, locked (others skip them):
        (id, sample count, summary)."""
        p = self._t.partials
        rows = await self._session.execute(
            select(p.c.id, p.c.sample_count, p.c.summary)
            .where(p.c.window_id == window_id)
            .order_by(p.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [(row.id, row.sample_count, bytes(row.summary)) for row in rows]

    async def replace_partials(
        self, window_id: int, ids: Sequence[int], sample_count: int, summary: bytes
    ) -> None:
        """The partials `ids` replaced by one holding them all."""
        p = self._t.partials
        await self._session.execute(p.delete().where(p.c.id.in_(list(ids))))
        await self._session.execute(
            p.insert().values(window_id=window_id, sample_count=sample_count, summary=summary)
        )

    async def partial_summaries(self, window_id: int) -> list[bytes]:
        p = self._t.partials
        rows = await self._session.execute(
            select(p.c.summary).where(p.c.window_id == window_id).order_by(p.c.id)
        )
        return [bytes(row.summary) for row in rows]

    async def next_due_in(self, now: datetime) -> float | None:
        """Seconds until the next open window's time is up; None when none has a time."""
        w = self._t.windows
        soonest = (
            await self._session.execute(select(func.min(w.c.closes_at)).where(w.c.state == OPEN))
        ).scalar_one_or_none()
        if not isinstance(soonest, datetime):
            return None
        return max((soonest - now).total_seconds(), 0.0)

    async def window(self, window_id: int) -> WindowRow | None:
        w = self._t.windows
        row = (await self._session.execute(select(w).where(w.c.id == window_id))).first()
        return None if row is None else WindowRow.of(row)

    async def windows_of(
        self,
        team: str,
        model: str,
        version: int,
        environment: str | None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[WindowRow]:
        w = self._t.windows
        conditions = [w.c.team == team, w.c.model == model, w.c.version == version]
        if environment is not None:
            conditions.append(w.c.environment == environment)
        statement = select(w).where(*conditions)
        statement = statement.order_by(w.c.id.desc() if newest_first else w.c.id)
        if limit is not None:
            statement = statement.limit(limit)
        rows = await self._session.execute(statement)
        return [WindowRow.of(row) for row in rows]

    # -- alert states ---------------------------------------------------------------

    async def lock_alert_state(
        self, team: str, model: str, version: int, environment: str
    ) -> dict[str, Any] | None:
        """The stored hysteresis of the key, locked until the transaction ends."""
        a = self._t.alerts
        await self._session.execute(
            pg_insert(a)
            .values(team=team, model=model, version=version, environment=environment, state={})
            .on_conflict_do_nothing()
        )
        row = (
            await self._session.execute(
                select(a.c.state)
                .where(
                    a.c.team == team,
                    a.c.model == model,
                    a.c.version == version,
                    a.c.environment == environment,
                )
                .with_for_update()
            )
        ).one()
        state: dict[str, Any] = row.state
        return state or None

    async def save_alert_state(
        self, team: str, model: str, version: int, environment: str, state: dict[str, Any]
    ) -> None:
        a = self._t.alerts
        await self._session.execute(
            update(a)
            .where(
                a.c.team == team,
                a.c.model == model,
                a.c.version == version,
                a.c.environment == environment,
            )
            .values(state=state, updated_at=func.now())
        )

    # -- reports --------------------------------------------------------------------

    async def add_report(self, report: ReportRow) -> None:
        values = {name: getattr(report, name) for name in ReportRow.__slots__}
        await self._session.execute(
            pg_insert(self._t.reports).values(**values).on_conflict_do_nothing()
        )

    async def report(self, team: str, report_id: UUID) -> ReportRow | None:
        r = self._t.reports
        row = (
            await self._session.execute(select(r).where(r.c.id == report_id, r.c.team == team))
        ).first()
        return None if row is None else ReportRow.of(row)

    async def reports(
        self,
        team: str,
        model: str,
        *,
        version: int | None,
        environment: str | None,
        limit: int,
        before: datetime | None = None,
    ) -> Sequence[ReportRow]:
        r = self._t.reports
        conditions = [r.c.team == team, r.c.model == model]
        if version is not None:
            conditions.append(r.c.version == version)
        if environment is not None:
            conditions.append(r.c.environment == environment)
        if before is not None:
            conditions.append(r.c.created_at < before)
        rows = await self._session.execute(
            select(r)
            .where(*conditions)
            .order_by(r.c.created_at.desc(), r.c.window_id.desc())
            .limit(limit)
        )
        return [ReportRow.of(row) for row in rows]
