"""The job's outcomes and the phases a cluster reports, recorded with their events."""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.canary import CanaryStep, next_step_due, step_of
from mlplane_deployer.domain.deployments import (
    ROLLBACK_FROM,
    Deployment,
    HistoryKind,
    Work,
    WorkState,
)
from mlplane_deployer.domain.environments import EnvironmentRules
from mlplane_deployer.domain.errors import (
    DeploymentNotFound,
    DeploymentStateConflict,
    InvalidPhaseTransition,
    UnknownEnvironment,
)
from mlplane_deployer.domain.phases import WAITING_FOR_HEALTH, transition
from mlplane_deployer.domain.rollback import health_cause
from mlplane_deployer.service.base import (
    DEPLOYER,
    JobPlan,
    ServiceBase,
    work_done,
)

_log = logging.getLogger("mlplane.deployer")

P = DeploymentPhase


def same_revision(recorded: str, seen: str) -> bool:
    """Argo CD reports full SHAs; either side may hold an abbreviated one."""
    return bool(seen) and (recorded.startswith(seen) or seen.startswith(recorded))


class JobOutcomes(ServiceBase):
    """What the job worker records, each in a unit of work of its own; and the phases a
    cluster reports (`observe_phase`, the Argo CD watch's seam)."""

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

    async def _rules(self, deployment: Deployment) -> EnvironmentRules:
        policy = (await self.policies.current(deployment.team)).policy
        try:
            return policy.environments.get(deployment.environment).rules
        except UnknownEnvironment:
            return EnvironmentRules()  # the environment was removed since: render as before

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
        if step.index == 0 and stable is None and step.is_last:
            what += " (no other version serves here, so no canary)"
        gate = "" if step.index == 0 else "health gate passed; "
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

    async def observe_phase(
        self,
        deployment_id: UUID,
        phase: DeploymentPhase,
        caused_by: str,
        reason: str | None,
        *,
        revision: str | None = None,
        resource_version: int | None = None,
        timeout_s: float | None = None,
    ) -> Deployment | None:
        """A phase the cluster reports (the Argo CD watch's seam): recorded and emitted
        when it is a change the domain allows; None when it changes nothing.

        Several followers (replicas) report the same changes: what is not a change, what
        is about another `revision` than the one committed now, a `resource_version` not
        newer than the one recorded, a move the domain refuses, and a timeout
        (`timeout_s`) not yet due by the recorded phase time are all ignored. `healthy`
        at a canary step opens the gate (the next step queued after the hold);
        leaving it closes the gate; `failed` rolls back where the environment says so.
        Raises `DeploymentNotFound`.
        """
        d = await self._store.get(deployment_id, for_update=True)
        if d is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        if revision is not None and (
            d.gitops_commit is None or not same_revision(d.gitops_commit, revision)
        ):
            return None
        if d.work is Work.ROLLBACK or d.phase is P.ROLLED_BACK:
            return None  # a revert is on its way: its commit decides what follows
        serving = await self._store.serving_in_environment(d.team, d.model, d.environment)
        if serving is None or serving.id != d.id:
            return None  # a newer deployment replaced it there: the cluster runs that one
        if (
            resource_version is not None
            and d.observed_version is not None
            and resource_version <= d.observed_version
        ):
            return None
        now = self._clock()
        if timeout_s is not None and (
            d.phase not in WAITING_FOR_HEALTH
            or d.waiting_since is None
            or d.waiting_since + timedelta(seconds=timeout_s) > now
        ):
            return None
        try:
            if transition(d.phase, phase, caused_by=caused_by, reason=reason) is None:
                return None
        except InvalidPhaseTransition:
            _log.info("deployment %s: %s cannot follow %s; ignored", d.id, phase, d.phase)
            return None
        rules = await self._rules(d)
        values: dict[str, object] = {}
        if resource_version is not None:
            values["observed_version"] = resource_version
        message = reason
        step = step_of(d.canary_weights, d.canary_step)
        following = next_step_due(d.canary_weights, d.canary_step)
        gate: str | None = None
        if phase is P.HEALTHY and step is not None and following is not None:
            if d.work is Work.NONE:
                hold = rules.canary_hold_s
                values |= {
                    "work": Work.DEPLOY.value,
                    "work_state": WorkState.QUEUED.value,
                    "attempts": 0,
                    "not_before": now + timedelta(seconds=hold),
                }
                gate = (
                    f"healthy at {step.describe()}; {following.describe()} after {hold} s healthy"
                )
                message = gate
        elif d.work is Work.DEPLOY and d.work_state is WorkState.QUEUED and step is not None:
            values |= work_done()
            gate = f"gate closed: {phase.value} at {step.describe()}"
        moved = await self._move(d, phase, caused_by, message, **values)
        if gate is not None:
            await self._history(moved, HistoryKind.GATE, caused_by, gate)
        if phase is P.FAILED and rules.rollback_on_failure:
            moved = await self.queue_rollback(
                moved, health_cause(caused_by), f"health failed: {reason or 'no reason given'}"
            )
        return moved

    async def followed(self) -> list[Deployment]:
        """What a cluster follower watches: per model and environment, the deployment
        serving there while the cluster may still move its phase."""
        return await self._store.followed((P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED))

    async def queue_rollback(
        self, deployment: Deployment, by: str, detail: str | None
    ) -> Deployment:
        """Queue the revert of `deployment`'s commits (`deployment` held locked); asking
        again changes nothing. Raises `DeploymentStateConflict` when nothing was committed."""
        if deployment.work is Work.ROLLBACK or deployment.phase is P.ROLLED_BACK:
            return deployment
        if deployment.phase not in ROLLBACK_FROM or deployment.gitops_commit is None:
            raise DeploymentStateConflict(
                f"a {deployment.phase.value} deployment has no commit to revert",
                phase=deployment.phase.value,
            )
        updated = await self._store.update(
            deployment.id,
            work=Work.ROLLBACK.value,
            work_state=WorkState.QUEUED.value,
            attempts=0,
            not_before=None,
            rolled_back_by=by,
            message="rollback queued" + (f": {detail}" if detail else ""),
        )
        await self._history(deployment, HistoryKind.ROLLBACK_REQUESTED, by, detail)
        return updated
