"""A deployment as the service keeps it: what was asked, its phase, its work, its history.

A deployment is one model version asked for one environment. Its `phase` is the
contract's (`pending` → `committed` → ...); its `work` says what the job worker
still has to do for it: nothing until approvals arrive, a queued render-and-commit,
a queued rollback, or nothing more. Pure data and small rules; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.policy import DenialCode, DenialReason, PolicyDecision

P = DeploymentPhase

# A deployment in one of these still holds its (team, model, version, environment):
# the same request again is the same deployment.
ACTIVE_PHASES = frozenset({P.PENDING, P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED})
# What a rollback can undo: something was committed.
ROLLBACK_FROM = frozenset({P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED, P.FAILED})
# What can be promoted to the next environment: it reached the cluster's repository.
PROMOTE_FROM = frozenset({P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED})

EMBEDDED_NOTE = "committed to the GitOps repository; no cluster is configured, so it stops here"


class DeploymentAction(StrEnum):
    """How the deployment came to be asked for."""

    DEPLOY = "deploy"
    PROMOTE = "promote"
    ALIAS = "alias"


class Work(StrEnum):
    """What the job worker still has to do for a deployment."""

    AWAITING_APPROVAL = "awaiting_approval"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    NONE = "none"


class WorkState(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"


class HistoryKind(StrEnum):
    REQUESTED = "requested"
    DECIDED = "decided"
    APPROVED = "approved"
    PHASE = "phase"
    ROLLBACK_REQUESTED = "rollback_requested"
    WORK_FAILED = "work_failed"
    CANARY_STEP = "canary_step"
    GATE = "gate"


@dataclass(frozen=True, slots=True)
class DeploymentAsk:
    """A request for a deployment, after the alias (if any) was resolved."""

    team: str
    model: str
    version: int
    environment: str
    requested_by: str
    action: DeploymentAction = DeploymentAction.DEPLOY
    reason: str | None = None
    idempotency_key: str | None = None
    deployment_id: UUID | None = None
    """Given by the caller (the gateway's `deployment.requested`); else one is made."""


@dataclass(frozen=True, slots=True)
class Deployment:
    id: UUID
    team: str
    model: str
    version: int
    environment: str
    image_repository: str
    digest: str
    requested_by: str
    action: DeploymentAction
    phase: DeploymentPhase
    policy_version: int
    approvals: tuple[str, ...]
    work: Work
    work_state: WorkState
    attempts: int
    message: str | None
    change_id: str
    gitops_commit: str | None
    rollback_commit: str | None
    rolled_back_by: str | None
    idempotency_key: str | None
    traceparent: str | None
    tracestate: str | None
    created_at: datetime
    updated_at: datetime
    canary_weights: tuple[int, ...] = ()
    """The traffic steps fixed when it was asked for (the policy's then); empty: none."""
    canary_step: int | None = None
    """Index in `canary_weights` of the step last committed; None before the first."""
    waiting_since: datetime | None = None
    observed_version: int | None = None
    """The Application resourceVersion of the last status recorded: older ones are stale."""

    @property
    def image(self) -> str:
        return f"{self.image_repository}@{self.digest}"

    @property
    def rollback_change_id(self) -> str:
        return f"rollback-{self.id}"

    @property
    def next_step(self) -> int | None:
        """The canary step its next commit lands (None: no canary steps)."""
        if not self.canary_weights:
            return None
        return 0 if self.canary_step is None else self.canary_step + 1

    @property
    def change_ids(self) -> tuple[str, ...]:
        """Every change id its commits may carry, newest step first: what a rollback reverts."""
        steps = range(len(self.canary_weights) - 1, 0, -1)
        return (*(step_change_id(self.id, step) for step in steps), self.change_id)

    @property
    def subject(self) -> str:
        """The CloudEvent subject of its status changes (one sequence per deployment)."""
        return f"deployments/{self.id}"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One thing that happened to a deployment, and who caused it."""

    at: datetime
    kind: HistoryKind
    caused_by: str
    phase: DeploymentPhase | None = None
    previous_phase: DeploymentPhase | None = None
    detail: str | None = None
    policy_version: int | None = None
    reasons: tuple[DenialReason, ...] = ()


def waits_only_for_approvals(decision: PolicyDecision) -> bool:
    """True when approvals are the one thing missing: the deployment waits for them."""
    return decision.codes() == frozenset({DenialCode.APPROVALS_MISSING})


def change_id_of(deployment_id: UUID) -> str:
    """The GitOps change id of a deployment's commit (its idempotency in git)."""
    return f"deploy-{deployment_id}"


def step_change_id(deployment_id: UUID, step: int) -> str:
    """The change id of canary step `step` (0 is the deployment's first commit).

    Never a prefix or part of another (git finds commits by a fixed-string grep)."""
    return change_id_of(deployment_id) if step == 0 else f"canary{step + 1}-{deployment_id}"
