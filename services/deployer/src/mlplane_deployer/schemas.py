"""The deployer's HTTP request and response models."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Self
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase, DriftSeverity, Environment
from mlplane_contracts.types import DnsLabel, NoControlCharacters, VersionNumber
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mlplane_deployer.domain.deployments import Deployment, HistoryEntry, Work
from mlplane_deployer.domain.environments import (
    MAX_APPROVALS,
    MAX_CANARY_HOLD_S,
    MAX_CANARY_STEPS,
    MAX_ENVIRONMENTS,
    MAX_FREEZE_WINDOWS,
    EnvironmentRules,
    EnvironmentSpec,
    FreezeWindow,
    GatewayRoute,
    ServingKind,
    TeamEnvironments,
    WeeklyFreeze,
)
from mlplane_deployer.domain.policy import DenialReason, PolicyDecision
from mlplane_deployer.policies import PolicyView
from mlplane_deployer.service import DeploymentView

Line = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024, strip_whitespace=True),
    NoControlCharacters,
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentIn(_In):
    """Deploy `version` (or the version `alias` points at) of `model` to `environment`."""

    model: DnsLabel
    version: VersionNumber | None = None
    alias: DnsLabel | None = None
    environment: Environment
    reason: Line | None = None

    @model_validator(mode="after")
    def _version_or_alias(self) -> Self:
        if (self.version is None) == (self.alias is None):
            raise ValueError("name exactly one of version and alias")
        return self


class FreezeWindowModel(_In):
    start: AwareDatetime
    end: AwareDatetime
    reason: Line = "freeze"


class WeeklyFreezeModel(_In):
    timezone: Line
    start_day: int = Field(ge=1, le=7)
    start_time: time
    end_day: int = Field(ge=1, le=7)
    end_time: time
    reason: Line = "weekly freeze"


class GatewayModel(_In):
    """The Gateway API `Gateway` the model's `HTTPRoute` attaches to."""

    name: DnsLabel
    namespace: DnsLabel
    hostname: Annotated[str, StringConstraints(max_length=253)] | None = None


class RulesModel(_In):
    """An environment's rules (see docs/services/deployer.md)."""

    require_passed_scan: bool = True
    require_healthy_in_previous: bool = True
    approvals_required: int = Field(default=0, ge=0, le=MAX_APPROVALS)
    require_lineage: bool = False
    serving: ServingKind = ServingKind.KUSTOMIZE
    follows_alias: DnsLabel | None = None
    freeze_windows: list[FreezeWindowModel] = Field(
        default_factory=list, max_length=MAX_FREEZE_WINDOWS
    )
    weekly_freezes: list[WeeklyFreezeModel] = Field(
        default_factory=list, max_length=MAX_FREEZE_WINDOWS
    )
    canary_weights: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=list, max_length=MAX_CANARY_STEPS
    )
    """Traffic steps of a new version (`[10, 50, 100]`); empty: all at once."""
    canary_hold_s: int = Field(default=0, ge=0, le=MAX_CANARY_HOLD_S)
    """How long a step stays healthy before the next one is committed."""
    gateway: GatewayModel | None = None
    rollback_on_failure: bool = True
    rollback_on_drift: DriftSeverity | None = None
    """A `drift.detected` of at least this severity rolls back; null: never."""

    def to_domain(self) -> EnvironmentRules:
        """Raises `InvalidEnvironments` for rules the domain refuses."""
        return EnvironmentRules(
            require_passed_scan=self.require_passed_scan,
            require_healthy_in_previous=self.require_healthy_in_previous,
            approvals_required=self.approvals_required,
            require_lineage=self.require_lineage,
            serving=self.serving,
            follows_alias=self.follows_alias,
            canary_weights=tuple(self.canary_weights),
            canary_hold_s=self.canary_hold_s,
            gateway=None
            if self.gateway is None
            else GatewayRoute(self.gateway.name, self.gateway.namespace, self.gateway.hostname),
            rollback_on_failure=self.rollback_on_failure,
            rollback_on_drift=self.rollback_on_drift,
            freeze_windows=tuple(
                FreezeWindow(w.start, w.end, w.reason) for w in self.freeze_windows
            ),
            weekly_freezes=tuple(
                WeeklyFreeze(w.timezone, w.start_day, w.start_time, w.end_day, w.end_time, w.reason)
                for w in self.weekly_freezes
            ),
        )

    @classmethod
    def of(cls, rules: EnvironmentRules) -> RulesModel:
        return cls(
            require_passed_scan=rules.require_passed_scan,
            require_healthy_in_previous=rules.require_healthy_in_previous,
            approvals_required=rules.approvals_required,
            require_lineage=rules.require_lineage,
            serving=rules.serving,
            follows_alias=rules.follows_alias,
            canary_weights=list(rules.canary_weights),
            canary_hold_s=rules.canary_hold_s,
            gateway=None
            if rules.gateway is None
            else GatewayModel(
                name=rules.gateway.name,
                namespace=rules.gateway.namespace,
                hostname=rules.gateway.hostname,
            ),
            rollback_on_failure=rules.rollback_on_failure,
            rollback_on_drift=rules.rollback_on_drift,
            freeze_windows=[
                FreezeWindowModel(start=w.start, end=w.end, reason=w.reason)
                for w in rules.freeze_windows
            ],
            weekly_freezes=[
                WeeklyFreezeModel(
                    timezone=w.timezone,
                    start_day=w.start_day,
                    start_time=w.start_time,
                    end_day=w.end_day,
                    end_time=w.end_time,
                    reason=w.reason,
                )
                for w in rules.weekly_freezes
            ],
        )


class EnvironmentModel(_In):
    name: Environment
    rules: RulesModel = Field(default_factory=RulesModel)


class PolicyIn(_In):
    """A team's environments in promotion order, each with its rules."""

    environments: list[EnvironmentModel] = Field(min_length=1, max_length=MAX_ENVIRONMENTS)

    def to_domain(self, team: str) -> TeamEnvironments:
        """Raises `InvalidEnvironments` (a name twice, an alias followed twice)."""
        return TeamEnvironments(
            team,
            tuple(EnvironmentSpec(e.name.value, e.rules.to_domain()) for e in self.environments),
        )


class PolicyOut(BaseModel):
    team: str
    version: int
    """0: the default, never written."""
    changed_by: str | None
    environments: list[EnvironmentModel]

    @classmethod
    def of(cls, view: PolicyView) -> PolicyOut:
        policy = view.policy
        return cls(
            team=policy.team,
            version=policy.version,
            changed_by=view.changed_by,
            environments=[
                EnvironmentModel(name=Environment(s.name), rules=RulesModel.of(s.rules))
                for s in policy.environments.environments
            ],
        )


class ReasonOut(BaseModel):
    code: str
    detail: str

    @classmethod
    def of(cls, reason: DenialReason) -> ReasonOut:
        return cls(code=reason.code.value, detail=reason.detail)


class DecisionOut(BaseModel):
    allowed: bool
    policy_version: int
    reasons: list[ReasonOut]

    @classmethod
    def of(cls, decision: PolicyDecision) -> DecisionOut:
        return cls(
            allowed=decision.allowed,
            policy_version=decision.policy_version,
            reasons=[ReasonOut.of(r) for r in decision.reasons],
        )


class HistoryOut(BaseModel):
    at: datetime
    kind: str
    caused_by: str
    phase: DeploymentPhase | None
    previous_phase: DeploymentPhase | None
    detail: str | None
    policy_version: int | None
    reasons: list[ReasonOut]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryOut:
        return cls(
            at=entry.at,
            kind=entry.kind.value,
            caused_by=entry.caused_by,
            phase=entry.phase,
            previous_phase=entry.previous_phase,
            detail=entry.detail,
            policy_version=entry.policy_version,
            reasons=[ReasonOut.of(r) for r in entry.reasons],
        )


class ApprovalOut(BaseModel):
    principal: str
    approved_at: datetime


class CanaryOut(BaseModel):
    """A canary's progress: the steps fixed at the request and the one committed."""

    weights: list[int]
    step: int | None
    """The step committed, counted from 1; null before the first commit."""
    weight: int | None
    """The share of traffic the new version has at that step."""
    complete: bool
    """The last step (100%) is committed."""

    @classmethod
    def of(cls, d: Deployment) -> CanaryOut | None:
        if not d.canary_weights:
            return None
        index = d.canary_step
        return cls(
            weights=list(d.canary_weights),
            step=None if index is None else index + 1,
            weight=None if index is None else d.canary_weights[index],
            complete=index is not None and index == len(d.canary_weights) - 1,
        )


class DeploymentOut(BaseModel):
    id: UUID
    team: str
    model: str
    version: int
    environment: str
    image: str
    digest: str
    requested_by: str
    action: str
    phase: DeploymentPhase
    waiting_for_approval: bool
    work: str
    """What is still to do: `awaiting_approval`, `deploy`, `rollback` or `none`."""
    policy_version: int
    approvals: list[str]
    """The approvals the policy counted."""
    message: str | None
    gitops_commit: str | None
    rollback_commit: str | None
    rolled_back_by: str | None
    """Who or what asked for the rollback: a principal, `health:argocd`, `drift:<event id>`."""
    canary: CanaryOut | None = None
    created_at: datetime
    updated_at: datetime
    decision: DecisionOut | None = None
    """The decision this call made, when it made one."""
    history: list[HistoryOut] | None = None
    approved_by: list[ApprovalOut] | None = None

    @classmethod
    def of(cls, d: Deployment, **extra: Any) -> DeploymentOut:
        return cls(
            id=d.id,
            team=d.team,
            model=d.model,
            version=d.version,
            environment=d.environment,
            image=d.image,
            digest=d.digest,
            requested_by=d.requested_by,
            action=d.action.value,
            phase=d.phase,
            waiting_for_approval=d.work is Work.AWAITING_APPROVAL,
            work=d.work.value,
            policy_version=d.policy_version,
            approvals=list(d.approvals),
            message=d.message,
            gitops_commit=d.gitops_commit,
            rollback_commit=d.rollback_commit,
            rolled_back_by=d.rolled_back_by,
            canary=CanaryOut.of(d),
            created_at=d.created_at,
            updated_at=d.updated_at,
            **extra,
        )

    @classmethod
    def of_view(cls, view: DeploymentView) -> DeploymentOut:
        return cls.of(
            view.deployment,
            history=[HistoryOut.of(e) for e in view.history],
            approved_by=[
                ApprovalOut(principal=a.principal, approved_at=at) for a, at in view.approvals
            ],
        )


class DeploymentPage(BaseModel):
    deployments: list[DeploymentOut]
    next_cursor: str | None
