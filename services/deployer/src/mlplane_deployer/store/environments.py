"""What serves in an environment: for rollbacks, the cluster follower and canary steps."""

from __future__ import annotations

from collections.abc import Sequence

from mlplane_contracts.events import DeploymentPhase
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_deployer.domain.deployments import Deployment, Work, WorkState
from mlplane_deployer.store.rows import deployment_from_row
from mlplane_deployer.store.tables import DeployerTables


class EnvironmentQueries:
    """Part of `DeploymentStore`: a model's deployments as one environment holds them."""

    _session: AsyncSession
    _t: DeployerTables

    async def serving_in_environment(
        self, team: str, model: str, environment: str, *, for_update: bool = False
    ) -> Deployment | None:
        """The deployment whose commit the environment holds now: the newest committed
        one of the model there that was not rolled back."""
        d = self._t.deployments
        query = (
            select(d)
            .where(
                d.c.team == team,
                d.c.model == model,
                d.c.environment == environment,
                d.c.gitops_commit.is_not(None),
                d.c.phase != DeploymentPhase.ROLLED_BACK.value,
            )
            .order_by(d.c.seq.desc())
            .limit(1)
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else deployment_from_row(row)

    async def drop_queued_steps(self, committed: Deployment) -> int:
        """Unqueue the next canary steps of the model's other deployments in the
        environment `committed` now holds; how many."""
        d = self._t.deployments
        result = await self._session.execute(
            update(d)
            .where(
                d.c.team == committed.team,
                d.c.model == committed.model,
                d.c.environment == committed.environment,
                d.c.id != committed.id,
                d.c.work == Work.DEPLOY.value,
                d.c.work_state == WorkState.QUEUED.value,
                d.c.canary_step.is_not(None),
            )
            .values(
                work=Work.NONE.value,
                work_state=WorkState.IDLE.value,
                not_before=None,
                message="replaced by a newer deployment before its next canary step",
                updated_at=func.now(),
            )
            .returning(d.c.id)
        )
        return len(result.all())

    async def followed(self, phases: Sequence[DeploymentPhase]) -> list[Deployment]:
        """Per model and environment, the deployment serving there, when it is in one of
        `phases`: what a cluster follower watches (after a restart too)."""
        d = self._t.deployments
        serving = (
            select(d)
            .where(
                d.c.gitops_commit.is_not(None),
                d.c.phase != DeploymentPhase.ROLLED_BACK.value,
            )
            .order_by(d.c.team, d.c.model, d.c.environment, d.c.seq.desc())
            .ext(distinct_on(d.c.team, d.c.model, d.c.environment))
            .subquery()
        )
        rows = await self._session.execute(
            select(serving).where(serving.c.phase.in_([p.value for p in phases]))
        )
        return [deployment_from_row(row) for row in rows]

    async def previous_in_environment(self, deployment: Deployment) -> Deployment | None:
        """The newest deployment committed before `deployment` to the same model and
        environment and not rolled back: what a rollback returns to."""
        d = self._t.deployments
        row = (
            await self._session.execute(
                select(d)
                .where(
                    d.c.team == deployment.team,
                    d.c.model == deployment.model,
                    d.c.environment == deployment.environment,
                    d.c.id != deployment.id,
                    d.c.gitops_commit.is_not(None),
                    d.c.phase != DeploymentPhase.ROLLED_BACK.value,
                    d.c.created_at <= deployment.created_at,
                )
                .order_by(d.c.seq.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else deployment_from_row(row)
