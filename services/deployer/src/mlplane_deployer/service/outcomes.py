"""The job's outcomes, recorded with their events (the worker's own unit of work)."""

from __future__ import annotations

import logging
from datetime import timedelta

from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.canary import CanaryStep, step_of
from mlplane_deployer.domain.deployments import (
    Deployment,
    HistoryKind,
    Work,
    WorkState,
)
from mlplane_deployer.service.base import (
    DEPLOYER,
    JobPlan,
    ServiceBase,
    work_done,
)

_log = logging.getLogger("mlplane.deployer")

P = DeploymentPhase


class JobOutcomes(ServiceBase):
    """What the job worker records, each in a unit of work of its own."""

    # -- the job's outcomes (the worker's own unit of work) ------------------------------

    async def plan(self, deployment: Deployment) -> JobPlan:
        rules = await self._rules(deployment)
        if deployment.work is Work.ROLLBACK:
            returns_to = await self._store.previous_in_environment(deployment)
            return JobPlan(deployment, rules.serving.value, returns_to)
        step = step_of(deployment.canary_weights, deployment.next_step)
        stable = None
        if step is not None and step.splits_traffic:
            stable = await self._store.previous_in_environment(deployment)
            if stable is None or stable.version == deployment.version:
                # Nothing else serves there: no traffic to weigh against, all at once.
                step, stable = CanaryStep(step.of - 1, 100, step.of), None
        return JobPlan(deployment, rules.serving.value, None, step, stable, rules.gateway)

    async def record_committed(
        self, deployment: Deployment, owner: str, commit: str, plan: JobPlan | None = None
    ) -> Deployment | None:
        """The deployment's commit landed: `committed` (a later canary step: `syncing`
        again, the cluster syncs the new weights). None when the lease was lost."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        message = (
            "committed to the GitOps repository; the cluster syncs it"
            if self._cluster
            else "committed to the GitOps repository; no cluster is configured, so it stops here"
        )
        # What it replaces there will not take its next canary step on top of this.
        await self._store.drop_queued_steps(held)
        if held.work is Work.ROLLBACK:  # asked for while this step was being landed
            return await self._rollback_after_step(
                held, gitops_commit=commit, canary_step=None if plan is None else plan.step
            )
        step = None if plan is None else plan.step
        if step is None:
            return await self._move(
                held, P.COMMITTED, DEPLOYER, message, gitops_commit=commit, **work_done()
            )
        stable = plan.stable if plan is not None else None
        what = (
            f"{step.describe()}: v{held.version} beside v{stable.version}"
            if stable is not None and step.splits_traffic
            else f"{step.describe()}: v{held.version} takes all traffic"
        )
        first = held.canary_step is None
        if first and stable is None and step.is_last:
            what += " (no other version serves here, so no canary)"
        gate = "" if first else "health gate passed; "
        target = P.COMMITTED if held.phase is P.PENDING else P.SYNCING
        moved = await self._move(
            held,
            target,
            DEPLOYER,
            f"{gate}{what}; {message}",
            gitops_commit=commit,
            canary_step=step.index,
            **work_done(),
        )
        await self._history(moved, HistoryKind.CANARY_STEP, DEPLOYER, f"{gate}{what} at {commit}")
        return moved

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
        if held.work is Work.ROLLBACK and deployment.work is not Work.ROLLBACK:
            return await self._rollback_after_step(held)
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
        failed = await self._move(held, DeploymentPhase.FAILED, DEPLOYER, reason, **work_done())
        if failed.gitops_commit is not None and (await self._rules(failed)).rollback_on_failure:
            # A later canary step could not be landed: what was landed goes back.
            return await self.queue_rollback(failed, DEPLOYER, f"a canary step failed: {reason}")
        return failed

    async def _rollback_after_step(self, held: Deployment, **landed: object) -> Deployment:
        """The rollback asked for while a canary step was landed runs now (what the step
        landed, if anything, is recorded so the revert takes it too)."""
        step = landed.pop("canary_step", None)
        if isinstance(step, CanaryStep):
            landed["canary_step"] = step.index
        return await self._store.update(
            held.id,
            work_state=WorkState.QUEUED.value,
            attempts=0,
            not_before=None,
            lease_owner=None,
            lease_expires_at=None,
            **landed,
        )
