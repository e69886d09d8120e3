"""The builder's repository: every query it runs, on the unit of work's session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mlplane_runtime.jobs import JobTrace
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_builder.domain import Build, BuildRequest, BuildStatus
from mlplane_builder.store.rows import build_from_row, mutable_columns, request_json
from mlplane_builder.store.tables import BuilderTables


@dataclass(frozen=True, slots=True)
class BuildFilter:
    """Which builds a listing returns: one team's, optionally one model's or status."""

    team: str
    model: str | None = None
    status: BuildStatus | None = None


class BuildStore:
    """The builder's repository on one session (the unit of work's)."""

    def __init__(self, session: AsyncSession, tables: BuilderTables) -> None:
        self._session = session
        self._builds = tables.builds

    async def insert_pending(
        self, request: BuildRequest, trace: JobTrace = JobTrace()
    ) -> Build | None:
        """A new pending build of `request`, run in `trace`; None when its version has a
        build already."""
        builds = self._builds
        row = (
            await self._session.execute(
                insert(builds)
                .values(
                    team=request.team,
                    model=request.model,
                    version=request.version,
                    request=request_json(request),
                    status=BuildStatus.PENDING.value,
                    traceparent=trace.traceparent,
                    tracestate=trace.tracestate,
                )
                .on_conflict_do_nothing(constraint="uq_builds_team_model_version")
                .returning(builds)
            )
        ).first()
        return None if row is None else build_from_row(row)

    async def get(self, build_id: int, *, team: str | None = None) -> Build | None:
        """The build `build_id` (of `team` when given: another team's is not found)."""
        builds = self._builds
        query = select(builds).where(builds.c.id == build_id)
        if team is not None:
            query = query.where(builds.c.team == team)
        row = (await self._session.execute(query)).first()
        return None if row is None else build_from_row(row)

    async def get_for_update(self, build_id: int, *, team: str) -> Build | None:
        builds = self._builds
        query = (
            select(builds).where(builds.c.id == build_id, builds.c.team == team).with_for_update()
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else build_from_row(row)

    async def list(self, where: BuildFilter, *, limit: int, before_id: int | None) -> list[Build]:
        """Newest first (by id, which never changes: pages are stable under inserts)."""
        builds = self._builds
        query = select(builds).where(builds.c.team == where.team)
        if where.model is not None:
            query = query.where(builds.c.model == where.model)
        if where.status is not None:
            query = query.where(builds.c.status == where.status.value)
        if before_id is not None:
            query = query.where(builds.c.id < before_id)
        rows = await self._session.execute(query.order_by(builds.c.id.desc()).limit(limit))
        return [build_from_row(row) for row in rows]

    async def claim(self, owner: str, lease_s: float) -> Build | None:
        """Take the oldest build that is due, or whose worker's lease ran out; None if none.

        The build is `running` under `owner`'s lease from the database's clock, one
        more attempt counted. Other workers skip rows locked here (SKIP LOCKED), so
        concurrent claims never take the same build.
        """
        builds = self._builds
        now = func.now()
        due = (
            select(builds.c.id)
            .where(
                or_(
                    and_(
                        builds.c.status == BuildStatus.PENDING.value,
                        or_(builds.c.not_before.is_(None), builds.c.not_before <= now),
                    ),
                    and_(
                        builds.c.status == BuildStatus.RUNNING.value,
                        builds.c.lease_expires_at < now,
                    ),
                )
            )
            .order_by(builds.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = (
            await self._session.execute(
                update(builds)
                .where(builds.c.id == due)
                .values(
                    status=BuildStatus.RUNNING.value,
                    attempts=builds.c.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    started_at=now,
                    finished_at=None,
                    not_before=None,
                    updated_at=now,
                )
                .returning(builds)
            )
        ).first()
        return None if row is None else build_from_row(row)

    async def renew_lease(self, build_id: int, owner: str, lease_s: float) -> bool:
        """Extend `owner`'s lease on a running build; False when the lease was lost."""
        builds = self._builds
        result = await self._session.execute(
            update(builds)
            .where(
                builds.c.id == build_id,
                builds.c.lease_owner == owner,
                builds.c.status == BuildStatus.RUNNING.value,
            )
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_s))
            .returning(builds.c.id)
        )
        return result.first() is not None

    async def finish_try(self, build: Build, owner: str) -> bool:
        """Write the outcome of `owner`'s try; False when another worker took the build."""
        builds = self._builds
        result = await self._session.execute(
            update(builds)
            .where(
                builds.c.id == build.id,
                builds.c.lease_owner == owner,
                builds.c.status == BuildStatus.RUNNING.value,
            )
            .values(**mutable_columns(build))
            .returning(builds.c.id)
        )
        return result.first() is not None

    async def release(self, build_id: int, owner: str) -> bool:
        """Put `owner`'s running build back, due now, its try not counted; False when
        another worker holds it."""
        builds = self._builds
        result = await self._session.execute(
            update(builds)
            .where(
                builds.c.id == build_id,
                builds.c.lease_owner == owner,
                builds.c.status == BuildStatus.RUNNING.value,
            )
            .values(
                status=BuildStatus.PENDING.value,
                attempts=builds.c.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                not_before=None,
                updated_at=func.now(),
            )
            .returning(builds.c.id)
        )
        return result.first() is not None

    async def save(self, build: Build) -> None:
        """Write a build the caller holds locked (`get_for_update`)."""
        builds = self._builds
        await self._session.execute(
            update(builds).where(builds.c.id == build.id).values(**mutable_columns(build))
        )

    async def next_due_in(self) -> float | None:
        """Seconds until the next pending build is due (0 if one is); None if none waits."""
        builds = self._builds
        soonest = (
            await self._session.execute(
                select(
                    func.min(
                        func.coalesce(func.extract("epoch", builds.c.not_before - func.now()), 0.0)
                    )
                ).where(builds.c.status == BuildStatus.PENDING.value)
            )
        ).scalar()
        return None if soonest is None else max(0.0, float(soonest))
