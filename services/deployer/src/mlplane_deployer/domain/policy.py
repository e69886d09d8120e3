"""Whether a model version may deploy to an environment: pure, every reason at once.

`evaluate(policy, request, facts)` never stops at the first failed rule: a denial
lists every rule the request fails, so a person fixes everything in one go. The
service gathers the facts (the latest scan, the version's phase in the previous
environment, approvals, lineage, the time) and stores the decision, which names
the policy version it was made under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mlplane_contracts.events import DeploymentPhase, ScanVerdict
from mlplane_contracts.scopes import DEPLOY_APPROVE

from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    TeamEnvironments,
    default_environments,
)
from mlplane_deployer.domain.errors import InvalidDeploymentPolicy


@dataclass(frozen=True, slots=True)
class DeploymentPolicy:
    """A team's environments and rules at one version; every edit makes the next version.

    Version 0 is the default a team gets before it writes its own (never stored).
    """

    environments: TeamEnvironments
    version: int = 0

    def __post_init__(self) -> None:
        """Raises `InvalidDeploymentPolicy` for a negative version."""
        if self.version < 0:
            raise InvalidDeploymentPolicy("a policy version is never negative", field="version")

    @property
    def team(self) -> str:
        return self.environments.team

    def with_rules(self, environment: str, rules: EnvironmentRules) -> DeploymentPolicy:
        """The next version, with `environment`'s rules replaced; raises `UnknownEnvironment`."""
        return DeploymentPolicy(self.environments.with_rules(environment, rules), self.version + 1)

    def with_environments(self, environments: TeamEnvironments) -> DeploymentPolicy:
        """The next version, with a new environment list; raises `InvalidDeploymentPolicy`."""
        if environments.team != self.team:
            raise InvalidDeploymentPolicy("a policy's environments belong to its team")
        return DeploymentPolicy(environments, self.version + 1)


def default_policy(team: str) -> DeploymentPolicy:
    return DeploymentPolicy(default_environments(team), 0)


class DenialCode(StrEnum):
    SCAN_MISSING = "scan_missing"
    SCAN_NOT_PASSED = "scan_not_passed"
    SCAN_POLICY_OUTDATED = "scan_policy_outdated"
    SCAN_OTHER_DIGEST = "scan_other_digest"
    NOT_HEALTHY_IN_PREVIOUS = "not_healthy_in_previous"
    APPROVALS_MISSING = "approvals_missing"
    FROZEN = "frozen"
    LINEAGE_MISSING = "lineage_missing"
    IMAGE_UNKNOWN = "image_unknown"
    """Not a rule of `evaluate`: the service knows no image of the version (not built)."""


@dataclass(frozen=True, slots=True)
class DenialReason:
    """One failed rule: a stable `code` for programs and a `detail` for people."""

    code: DenialCode
    detail: str


@dataclass(frozen=True, slots=True)
class DeploymentRequest:
    """What is asked: this version (by its image digest) of this model, to this environment."""

    team: str
    model: str
    version: int
    environment: str
    digest: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class ScanFact:
    """The latest verdict the scanner gave for a digest, and the scan policy it used."""

    digest: str
    verdict: ScanVerdict
    policy_version: int


@dataclass(frozen=True, slots=True)
class Approval:
    """A principal's approval, with the scopes that principal held when approving."""

    principal: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from; either part may be unknown."""

    commit: str | None = None
    ci_run: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.commit) and bool(self.ci_run)


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """What the service knows when it decides, gathered from its own tables.

    - `scan`: the latest scan of the digest, or None when there is none.
    - `current_scan_policy_version`: the scanner's current policy version for the
      team and environment; a verdict decided under an older one no longer counts.
    - `previous_phase`: this version's phase in the previous environment.
    """

    now: datetime
    scan: ScanFact | None = None
    current_scan_policy_version: int = 0
    previous_phase: DeploymentPhase | None = None
    approvals: tuple[Approval, ...] = ()
    lineage: Lineage = field(default_factory=Lineage)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The outcome, the policy version it was made under, and every reason for a denial."""

    team: str
    environment: str
    policy_version: int
    decided_at: datetime
    reasons: tuple[DenialReason, ...]
    counted_approvals: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def codes(self) -> frozenset[DenialCode]:
        return frozenset(reason.code for reason in self.reasons)


def evaluate(
    policy: DeploymentPolicy, request: DeploymentRequest, facts: DeploymentFacts
) -> PolicyDecision:
    """Apply every rule of `request.environment` and return the decision.

    Raises `UnknownEnvironment` when the team has no such environment and
    `InvalidDeploymentPolicy` when the policy is another team's or `now` is naive.
    """
    if request.team != policy.team:
        raise InvalidDeploymentPolicy(
            f"policy of team {policy.team!r} cannot decide for team {request.team!r}"
        )
    if facts.now.tzinfo is None:
        raise InvalidDeploymentPolicy("a decision's time carries a timezone")
    spec = policy.environments.get(request.environment)
    previous = policy.environments.previous(request.environment)
    rules = spec.rules
    reasons: list[DenialReason] = []
    if rules.require_passed_scan:
        reasons.extend(_scan_reasons(request, facts))
    if (
        rules.require_healthy_in_previous
        and previous is not None
        and facts.previous_phase is not DeploymentPhase.HEALTHY
    ):
        seen = facts.previous_phase.value if facts.previous_phase else "not deployed"
        reasons.append(
            DenialReason(
                DenialCode.NOT_HEALTHY_IN_PREVIOUS,
                f"version {request.version} is not healthy in {previous.name} ({seen})",
            )
        )
    counted = _counted_approvals(request, facts.approvals)
    if len(counted) < rules.approvals_required:
        reasons.append(
            DenialReason(
                DenialCode.APPROVALS_MISSING,
                _approvals_detail(request, facts.approvals, counted, rules.approvals_required),
            )
        )
    reasons.extend(_freeze_reasons(rules, facts.now))
    if rules.require_lineage and not facts.lineage.complete:
        missing = [
            name
            for name, value in (("commit", facts.lineage.commit), ("CI run", facts.lineage.ci_run))
            if not value
        ]
        reasons.append(
            DenialReason(
                DenialCode.LINEAGE_MISSING,
                f"{request.environment} needs lineage; version {request.version} has no "
                + " and no ".join(missing),
            )
        )
    return PolicyDecision(
        team=request.team,
        environment=request.environment,
        policy_version=policy.version,
        decided_at=facts.now,
        reasons=tuple(reasons),
        counted_approvals=counted,
    )


def _scan_reasons(request: DeploymentRequest, facts: DeploymentFacts) -> list[DenialReason]:
    scan = facts.scan
    if scan is None:
        return [DenialReason(DenialCode.SCAN_MISSING, f"{request.digest} has not been scanned")]
    reasons = []
    if scan.digest != request.digest:
        reasons.append(
            DenialReason(
                DenialCode.SCAN_OTHER_DIGEST,
                f"the scan is of {scan.digest}, the deployment runs {request.digest}",
            )
        )
    if scan.verdict is not ScanVerdict.PASSED:
        reasons.append(
            DenialReason(
                DenialCode.SCAN_NOT_PASSED,
                f"the latest scan of {scan.digest} is {scan.verdict.value}, not passed",
            )
        )
    if scan.policy_version != facts.current_scan_policy_version:
        reasons.append(
            DenialReason(
                DenialCode.SCAN_POLICY_OUTDATED,
                f"the verdict was decided under scan policy version {scan.policy_version}; "
                f"the current one is {facts.current_scan_policy_version}",
            )
        )
    return reasons


def _counted_approvals(
    request: DeploymentRequest, approvals: tuple[Approval, ...]
) -> tuple[str, ...]:
    # Distinct principals, in a stable order, each holding deploy:approve at approval time.
    return tuple(
        sorted(
            {
                a.principal
                for a in approvals
                if a.principal != request.requested_by and DEPLOY_APPROVE in a.scopes
            }
        )
    )


def _approvals_detail(
    request: DeploymentRequest,
    approvals: tuple[Approval, ...],
    counted: tuple[str, ...],
    required: int,
) -> str:
    detail = f"{request.environment} needs {required} approval(s), has {len(counted)}"
    notes = []
    if any(a.principal == request.requested_by for a in approvals):
        notes.append(f"the requester {request.requested_by} cannot approve their own deployment")
    lacking = sorted(
        {a.principal for a in approvals if DEPLOY_APPROVE not in a.scopes} - {request.requested_by}
    )
    if lacking:
        notes.append(f"{', '.join(lacking)} do(es) not hold {DEPLOY_APPROVE}")
    return "; ".join([detail, *notes])


def _freeze_reasons(rules: EnvironmentRules, now: datetime) -> list[DenialReason]:
    reasons = [
        DenialReason(
            DenialCode.FROZEN,
            f"frozen from {w.start.isoformat()} to {w.end.isoformat()}: {w.reason}",
        )
        for w in rules.freeze_windows
        if w.covers(now)
    ]
    reasons.extend(
        DenialReason(
            DenialCode.FROZEN,
            f"weekly freeze (day {w.start_day} {w.start_time.isoformat()} to day {w.end_day} "
            f"{w.end_time.isoformat()}, {w.timezone}): {w.reason}",
        )
        for w in rules.weekly_freezes
        if w.covers(now)
    )
    return reasons
