"""What the cluster and the drift service report: phases and drifts, and the rollbacks
they cause, recorded with their events.

Several followers (one per replica) report the same phases, some late; what lands
is what the domain allows, about the commit serving now, newer than the last
recorded. `healthy` at a canary step opens the gate to the next; `failed` rolls back
where the environment says so, and so does a severe enough `drift.detected`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from mlplane_contracts import events as ev
from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.canary import next_step_due, step_of
from mlplane_deployer.domain.deployments import (
    ROLLBACK_FROM,
    Deployment,
    HistoryKind,
    Work,
    WorkState,
)
from mlplane_deployer.domain.errors import (
    DeploymentNotFound,
    InvalidPhaseTransition,
    UnknownEnvironment,
)
from mlplane_deployer.domain.phases import WAITING_FOR_HEALTH, transition
from mlplane_deployer.domain.rollback import drift_cause, drift_rolls_back, health_cause
from mlplane_deployer.service.base import work_done
from mlplane_deployer.service.outcomes import JobOutcomes

_log = logging.getLogger("mlplane.deployer")

P = DeploymentPhase


def same_revision(recorded: str, seen: str) -> bool:
    """Argo CD reports full SHAs; either side may hold an abbreviated one."""
    return bool(seen) and (recorded.startswith(seen) or seen.startswith(recorded))


class ClusterObservations(JobOutcomes):
    """What a cluster follower records (each in a unit of work of its own), and drifts."""

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
        may_roll_back: bool = True,
    ) -> Deployment | None:
        """A phase the cluster reports (the Argo CD watch's seam): recorded and emitted
        when it is a change the domain allows; None when it changes nothing.

        Several followers (replicas) report the same changes: what is not a change, what
        is about another `revision` than the one committed now, a `resource_version` not
        newer than the one recorded, a move the domain refuses, and a timeout
        (`timeout_s`) not yet due by the recorded phase time are all ignored. `healthy`
        at a canary step opens the gate (the next step queued after the hold);
        leaving it closes the gate; `failed` rolls back where the environment says so
        (unless `may_roll_back` is False: the Application was deleted, nothing runs that
        a revert would fix). Raises `DeploymentNotFound`.
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
        # A timeout counts from the recorded start of the wait (unknown: committed before
        # a cluster was configured, and the follower's own deadline decides).
        if timeout_s is not None and (
            d.phase not in WAITING_FOR_HEALTH
            or (
                d.waiting_since is not None and d.waiting_since + timedelta(seconds=timeout_s) > now
            )
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
        if phase is P.FAILED and rules.rollback_on_failure and may_roll_back:
            moved = await self.queue_rollback(
                moved, health_cause(caused_by), f"health failed: {reason or 'no reason given'}"
            )
        return moved

    async def followed(self) -> list[Deployment]:
        """What a cluster follower watches: per model and environment, the deployment
        serving there while the cluster may still move its phase."""
        return await self._store.followed((P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED))

    async def on_drift(self, event_id: str, data: ev.DriftDetected) -> Deployment | None:
        """Roll back the version serving in the drift's environment when the drift is at
        least as severe as the environment's `rollback_on_drift`; None when it is not, or
        the version drifting no longer serves there (or is being rolled back already).

        The rollback names the event (`drift:<event id>`) as its cause; a redelivered or
        repeated drift finds the rollback queued or done and changes nothing.
        """
        policy = (await self.policies.current(data.team)).policy
        try:
            rules = policy.environments.get(data.environment.value).rules
        except UnknownEnvironment:
            return None
        if not drift_rolls_back(rules, data.severity):
            return None
        serving = await self._store.serving_in_environment(
            data.team, data.model, data.environment.value, for_update=True
        )
        if (
            serving is None
            or serving.version != data.version
            or serving.work is Work.ROLLBACK
            or serving.phase not in ROLLBACK_FROM
        ):
            return None
        detail = (
            f"drift.detected {event_id}: {data.severity.value} drift, "
            f"{data.drift_share:.0%} of features drifted (threshold {data.share_threshold:.0%})"
        )
        return await self.queue_rollback(serving, drift_cause(event_id), detail)
