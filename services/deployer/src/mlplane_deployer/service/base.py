"""The deployer's use cases on one unit of work; none commits (the route's or message's
scope does, or the job worker's own unit of work).

A request is decided by the foundations' `evaluate` with the facts the deployer keeps
(the digest's latest scan, the version's phase in the previous environment, approvals,
lineage, the time). Allowed: a pending deployment queued for the job worker. Missing
only approvals: a pending deployment waiting for them. Anything else: a denial listing
every reason. Every decision is stored with the policy version it was made under;
every phase change is a history entry naming who caused it and a
`deployment.status_changed` event in the outbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from mlplane_contracts import events as ev
from mlplane_contracts.events import DeploymentPhase
from mlplane_runtime.uow import UnitOfWork

from mlplane_deployer.domain.canary import CanaryStep
from mlplane_deployer.domain.deployments import (
    ROLLBACK_FROM,
    Deployment,
    DeploymentAsk,
    HistoryEntry,
    HistoryKind,
    Work,
    WorkState,
    step_change_id,
    waits_only_for_approvals,
)
from mlplane_deployer.domain.environments import EnvironmentRules, GatewayRoute
from mlplane_deployer.domain.errors import (
    DeploymentDenied,
    DeploymentNotFound,
    DeploymentStateConflict,
    UnknownEnvironment,
)
from mlplane_deployer.domain.phases import WAITING_FOR_HEALTH, transition, waiting_starts
from mlplane_deployer.domain.policy import (
    Approval,
    PolicyDecision,
)
from mlplane_deployer.policies import PolicyService
from mlplane_deployer.store import DeployerTables, DeploymentStore

DEPLOYER = "service:deployer"
"""Who causes what the deployer does by itself (a commit landing, a retry giving up)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """`deployment` (None when denied), whether this call created it, the decision made
    (None when the ask repeated an existing deployment) and, when denied, the error."""

    deployment: Deployment | None
    created: bool
    decision: PolicyDecision | None = None
    denial: DeploymentDenied | None = None


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment: Deployment
    history: list[HistoryEntry]
    approvals: list[tuple[Approval, datetime]]


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What a claimed deployment's job needs besides the deployment: how the environment
    serves, the approvals counted, and, for a rollback, the version it returns to; for a
    canary, the step it lands and the version serving beside it (`stable`)."""

    deployment: Deployment
    serving: str
    returns_to: Deployment | None
    step: CanaryStep | None = None
    stable: Deployment | None = None
    gateway: GatewayRoute | None = None

    @property
    def change_id(self) -> str:
        """The change id of the commit this job lands."""
        d = self.deployment
        return d.change_id if self.step is None else step_change_id(d.id, self.step.index)

    @property
    def canary_weight(self) -> int | None:
        """The canary's share of traffic when this commit splits it, else None."""
        if self.step is None or self.stable is None or not self.step.splits_traffic:
            return None
        return self.step.weight


class ServiceBase:
    """What the deployer's use cases share: the store, the clock, and recording a phase
    change (history entry and `deployment.status_changed` in the outbox)."""

    def __init__(
        self,
        uow: UnitOfWork,
        tables: DeployerTables,
        *,
        clock: Callable[[], datetime] = utc_now,
        cluster_configured: bool = False,
    ) -> None:
        self._uow = uow
        self._store = DeploymentStore(uow.session, tables)
        self._clock = clock
        self._cluster = cluster_configured
        self.policies = PolicyService(self._store)

    async def _move(
        self,
        deployment: Deployment,
        phase: DeploymentPhase,
        caused_by: str,
        message: str | None,
        **values: object,
    ) -> Deployment:
        change = transition(deployment.phase, phase, caused_by=caused_by, reason=message)
        if change is None:
            return await self._store.update(deployment.id, message=message, **values)
        new_commit = (
            "gitops_commit" in values and values["gitops_commit"] != deployment.gitops_commit
        )
        if not self._cluster:
            # Nothing waits for health without a cluster: switching one on later gives
            # what was committed meanwhile a whole timeout, not an expired one.
            values["waiting_since"] = None
        elif waiting_starts(deployment.phase, phase, new_commit):
            values["waiting_since"] = self._clock()
        elif phase not in WAITING_FOR_HEALTH:
            values["waiting_since"] = None
        updated = await self._store.update(
            deployment.id, phase=phase.value, message=message, **values
        )
        await self._phase_entry(updated, deployment.phase, caused_by, message)
        self._emit(updated, deployment.phase)
        return updated

    def _emit(self, deployment: Deployment, previous: DeploymentPhase | None) -> None:
        self._uow.emit(
            ev.DeploymentStatusChanged(
                deployment_id=deployment.id,
                team=deployment.team,
                model=deployment.model,
                version=deployment.version,
                environment=ev.Environment(deployment.environment),
                phase=deployment.phase,
                previous_phase=previous,
                image=ev.ImageReference(
                    repository=deployment.image_repository, digest=deployment.digest
                ),
                gitops_commit=deployment.rollback_commit or deployment.gitops_commit,
                message=None if deployment.message is None else deployment.message[:4000],
                changed_at=self._clock(),
            ),
            subject=deployment.subject,
        )

    async def _history(
        self,
        deployment: Deployment,
        kind: HistoryKind,
        caused_by: str,
        detail: str | None,
        at: datetime | None = None,
    ) -> None:
        await self._store.add_history(
            deployment.id, HistoryEntry(at or self._clock(), kind, caused_by, detail=detail)
        )

    async def _phase_entry(
        self,
        deployment: Deployment,
        previous: DeploymentPhase | None,
        caused_by: str,
        detail: str | None,
        at: datetime | None = None,
    ) -> None:
        await self._store.add_history(
            deployment.id,
            HistoryEntry(
                at or self._clock(),
                HistoryKind.PHASE,
                caused_by,
                phase=deployment.phase,
                previous_phase=previous,
                detail=detail,
                policy_version=deployment.policy_version,
            ),
        )

    async def _get(self, team: str, deployment_id: UUID) -> Deployment:
        found = await self._store.get(deployment_id, team=team)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return found

    async def _locked(self, team: str, deployment_id: UUID) -> Deployment:
        found = await self._store.get(deployment_id, team=team, for_update=True)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return found

    async def _view(self, deployment: Deployment) -> DeploymentView:
        return DeploymentView(
            deployment,
            await self._store.history_of(deployment.id),
            await self._store.approvals_of(deployment.id),
        )

    async def _rules(self, deployment: Deployment) -> EnvironmentRules:
        policy = (await self.policies.current(deployment.team)).policy
        try:
            return policy.environments.get(deployment.environment).rules
        except UnknownEnvironment:
            return EnvironmentRules()  # the environment was removed since: render as before

    async def queue_rollback(
        self, deployment: Deployment, by: str, detail: str | None
    ) -> Deployment:
        """Queue the revert of `deployment`'s commits (`deployment` held locked); asking
        again changes nothing. Raises `DeploymentStateConflict` when nothing was committed."""
        if deployment.work is Work.ROLLBACK or deployment.phase is DeploymentPhase.ROLLED_BACK:
            return deployment
        if deployment.phase not in ROLLBACK_FROM or deployment.gitops_commit is None:
            raise DeploymentStateConflict(
                f"a {deployment.phase.value} deployment has no commit to revert",
                phase=deployment.phase.value,
            )
        # A canary step being landed keeps its lease: its commit is recorded first, then
        # the revert (of that commit too) is queued (`JobOutcomes.rollback_after_step`).
        running = deployment.work_state is WorkState.RUNNING
        updated = await self._store.update(
            deployment.id,
            work=Work.ROLLBACK.value,
            rolled_back_by=by,
            message="rollback queued" + (f": {detail}" if detail else ""),
            **({} if running else {"work_state": WorkState.QUEUED.value}),
            **({} if running else {"attempts": 0, "not_before": None}),
        )
        await self._history(deployment, HistoryKind.ROLLBACK_REQUESTED, by, detail)
        return updated


def work_done() -> dict[str, object]:
    return {
        "work": Work.NONE.value,
        "work_state": WorkState.IDLE.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "not_before": None,
    }


def waiting_message(decision: PolicyDecision) -> str | None:
    if decision.allowed:
        return "queued to render and commit"
    return "waiting for approval: " + "; ".join(r.detail for r in decision.reasons)


def decided_entry(decision: PolicyDecision, by: str) -> HistoryEntry:
    if decision.allowed:
        detail = "allowed"
    elif waits_only_for_approvals(decision):
        detail = "waiting for approvals"
    else:
        detail = "denied"
    return HistoryEntry(
        decision.decided_at,
        HistoryKind.DECIDED,
        by,
        detail=detail,
        policy_version=decision.policy_version,
        reasons=decision.reasons,
    )


def with_version(ask: DeploymentAsk, version: int) -> DeploymentAsk:
    return dataclasses.replace(ask, version=version)
