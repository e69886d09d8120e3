"""The job worker's queries: claims under a lease, renewals, releases, what is due."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_deployer.domain.deployments import Deployment, WorkState
from mlplane_deployer.store.rows import deployment_from_row
from mlplane_deployer.store.tables import DeployerTables


class JobQueue:
    """Part of `DeploymentStore`: the deployments as the job worker's queue."""

    _session: AsyncSession
    _t: DeployerTables

    async def claim(self, owner: str, lease_s: float) -> Deployment | None:
        """Take the oldest queued deployment that is due, or one whose worker's lease ran
        out; it runs under `owner`'s lease from the database's clock. SKIP LOCKED: two
        workers never take the same one."""
        d = self._t.deployments
        now = func.now()
        due = (
            select(d.c.id)
            .where(
                or_(
                    and_(
                        d.c.work_state == WorkState.QUEUED.value,
                        or_(d.c.not_before.is_(None), d.c.not_before <= now),
                    ),
                    and_(d.c.work_state == WorkState.RUNNING.value, d.c.lease_expires_at < now),
                )
            )
            .order_by(d.c.seq)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = (
            await self._session.execute(
                update(d)
                .where(d.c.id == due)
                .values(
                    work_state=WorkState.RUNNING.value,
                    attempts=d.c.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    not_before=None,
                    updated_at=now,
                )
                .returning(d)
            )
        ).first()
        return None if row is None else deployment_from_row(row)

    async def renew_lease(self, deployment_id: UUID, owner: str, lease_s: float) -> bool:
        d = self._t.deployments
        result = await self._session.execute(
            update(d)
            .where(
                d.c.id == deployment_id,
                d.c.lease_owner == owner,
                d.c.work_state == WorkState.RUNNING.value,
            )
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_s))
            .returning(d.c.id)
        )
        return result.first() is not None

    async def holds_lease(self, deployment_id: UUID, owner: str) -> Deployment | None:
        """The deployment, locked, when `owner` still runs it; None otherwise."""
        d = self._t.deployments
        row = (
            await self._session.execute(
                select(d)
                .where(
                    d.c.id == deployment_id,
                    d.c.lease_owner == owner,
                    d.c.work_state == WorkState.RUNNING.value,
                )
                .with_for_update()
            )
        ).first()
        return None if row is None else deployment_from_row(row)

    async def release(self, deployment_id: UUID, owner: str) -> None:
        d = self._t.deployments
        await self._session.execute(
            update(d)
            .where(
                d.c.id == deployment_id,
                d.c.lease_owner == owner,
                d.c.work_state == WorkState.RUNNING.value,
            )
            .values(
                work_state=WorkState.QUEUED.value,
                attempts=d.c.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=func.now(),
            )
        )

    async def next_due_in(self) -> float | None:
        d = self._t.deployments
        soonest = (
            await self._session.execute(
                select(
                    func.min(func.coalesce(func.extract("epoch", d.c.not_before - func.now()), 0.0))
                ).where(d.c.work_state == WorkState.QUEUED.value)
            )
        ).scalar()
        return None if soonest is None else max(0.0, float(soonest))
