"""The job's outcomes and the phases a cluster reports, recorded with their events."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.deployments import (
    Deployment,
    HistoryKind,
    Work,
    WorkState,
)
from mlplane_deployer.domain.errors import (
    DeploymentNotFound,
    UnknownEnvironment,
)
from mlplane_deployer.domain.phases import transition
from mlplane_deployer.service.base import (
    DEPLOYER,
    JobPlan,
    ServiceBase,
    work_done,
)


class JobOutcomes(ServiceBase):
    """What the job worker records, each in a unit of work of its own; and the phases a
    cluster reports (`observe_phase`, the Argo CD watch's seam)."""

    # -- the job's outcomes (the worker's own unit of work) ------------------------------

    async def plan(self, deployment: Deployment) -> JobPlan:
        policy = (await self.policies.current(deployment.team)).policy
        try:
            serving = policy.environments.get(deployment.environment).rules.serving.value
        except UnknownEnvironment:
            serving = "kustomize"  # the environment was removed since: render as before
        returns_to = None
        if deployment.work is Work.ROLLBACK:
            returns_to = await self._store.previous_in_environment(deployment)
        return JobPlan(deployment, serving, returns_to)

    async def record_committed(
        self, deployment: Deployment, owner: str, commit: str
    ) -> Deployment | None:
        """The deployment's commit landed: `committed`. None when the lease was lost."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        message = (
            "committed to the GitOps repository; the cluster syncs it"
            if self._cluster
            else "committed to the GitOps repository; no cluster is configured, so it stops here"
        )
        return await self._move(
            held,
            DeploymentPhase.COMMITTED,
            DEPLOYER,
            message,
            gitops_commit=commit,
            **work_done(),
        )

    async def record_rolled_back(
        self, deployment: Deployment, owner: str, commit: str
    ) -> Deployment | None:
        """The revert commit landed: `rolled_back`. None when the lease was lost."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        return await self._move(
            held,
            DeploymentPhase.ROLLED_BACK,
            held.rolled_back_by or DEPLOYER,
            f"reverted by commit {commit}",
            rollback_commit=commit,
            **work_done(),
        )

    async def record_failure(
        self,
        deployment: Deployment,
        owner: str,
        reason: str,
        *,
        retryable: bool,
        max_attempts: int,
        retry_delay_s: float,
    ) -> Deployment | None:
        """A try failed: queued again after a backoff while tries remain and the cause may
        pass; else a deployment `failed` (a rollback stays where it was, saying why)."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        await self._history(held, HistoryKind.WORK_FAILED, DEPLOYER, reason)
        if retryable and held.attempts < max_attempts:
            delay = retry_delay_s * 2 ** (held.attempts - 1)
            return await self._store.update(
                held.id,
                work_state=WorkState.QUEUED.value,
                not_before=self._clock() + timedelta(seconds=delay),
                lease_owner=None,
                lease_expires_at=None,
                message=f"try {held.attempts} failed, retried in {delay:.0f} s: {reason}",
            )
        if held.work is Work.ROLLBACK:
            return await self._store.update(
                held.id, message=f"rollback failed: {reason}", **work_done()
            )
        return await self._move(held, DeploymentPhase.FAILED, DEPLOYER, reason, **work_done())

    async def observe_phase(
        self, deployment_id: UUID, phase: DeploymentPhase, caused_by: str, reason: str | None
    ) -> Deployment | None:
        """A phase the cluster reports (the Argo CD watch's seam): recorded and emitted
        when it is a change. Raises `DeploymentNotFound`, `InvalidPhaseTransition`."""
        deployment = await self._store.get(deployment_id, for_update=True)
        if deployment is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        if transition(deployment.phase, phase, caused_by=caused_by, reason=reason) is None:
            return None
        return await self._move(deployment, phase, caused_by, reason)
