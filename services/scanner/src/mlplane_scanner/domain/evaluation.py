"""How a verdict is decided: findings, a policy and the time in; verdict and reasons out.

Pure: the same findings, policy, time and image give the same evaluation, so a
verdict can be recomputed whenever a policy changes or an exception expires.

Order of decision, per finding:
1. a secret always blocks (no exception, no VEX);
2. a license finding blocks only when its license is denied;
3. a VEX `not_affected` statement for this image, an active exception, or (for
   a vulnerability with no fix) `ignore_unfixed` suppresses it, recorded with why;
4. what is left blocks when more severe than `max_severity` (or is a denied license).

Counts are per severity of the findings still in effect after step 3 (license
findings count only when denied: an allowed license is not a finding to act on).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from mlplane_contracts.events import Severity

from mlplane_scanner.domain.findings import (
    SEVERITY_ORDER,
    Finding,
    FindingKind,
    severity_rank,
)
from mlplane_scanner.domain.policy import Policy

# An event carries at most this many reasons; the rest are summed up in one line.
MAX_REASONS = 50
NOT_ASSESSED_CAUSE = "no vulnerability database reachable"


class Outcome(StrEnum):
    """A policy's verdict on findings (an `error` verdict is decided before evaluation)."""

    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A finding the policy set aside, and why (an exception, a VEX statement, no fix)."""

    finding: Finding
    why: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    environment: str
    policy_version: int
    verdict: Outcome
    reasons: tuple[str, ...]
    counts: Mapping[Severity, int]
    blocking: tuple[Finding, ...]
    suppressed: tuple[Suppressed, ...]
    vulnerabilities_assessed: bool

    @property
    def passed(self) -> bool:
        return self.verdict is Outcome.PASSED


def evaluate(
    findings: Iterable[Finding],
    policy: Policy,
    *,
    now: datetime,
    vulnerabilities_assessed: bool,
    image_digest: str | None = None,
    not_assessed_cause: str = NOT_ASSESSED_CAUSE,
) -> Evaluation:
    """Decide the verdict of `findings` under `policy` at `now`.

    `image_digest` is what VEX products are matched against (no digest: VEX
    statements do not apply, e.g. for manifests). Reasons name what to act on,
    most severe first, at most `MAX_REASONS` of them plus a line counting the rest.
    """
    blocking: list[tuple[Finding, str]] = []
    suppressed: list[Suppressed] = []
    in_effect: list[Finding] = []
    limit = severity_rank(policy.max_severity)
    for finding in _unique(findings):
        if finding.kind is FindingKind.SECRET:
            in_effect.append(finding)
            blocking.append((finding, _secret_reason(finding)))
            continue
        if finding.kind is FindingKind.LICENSE and not policy.denies_license(finding.id):
            continue
        why = _suppression(finding, policy, now, image_digest)
        if why is not None:
            suppressed.append(Suppressed(finding, why))
            continue
        in_effect.append(finding)
        if finding.kind is FindingKind.LICENSE:
            blocking.append((finding, _license_reason(finding)))
        elif severity_rank(finding.severity) < limit:
            blocking.append((finding, _severity_reason(finding, policy)))
    blocking.sort(key=lambda item: (_kind_rank(item[0]), severity_rank(item[0].severity), item[1]))
    reasons = _bounded([reason for _, reason in blocking])
    failed = bool(blocking)
    if not vulnerabilities_assessed:
        blocks = policy.block_when_vulnerabilities_not_assessed
        failed = failed or blocks
        how = "blocks" if blocks else "allows"
        reasons.insert(
            0,
            f"vulnerabilities not assessed: {not_assessed_cause} "
            f"(policy {how} {policy.environment.value})",
        )
    counts = Counter(f.severity for f in in_effect)
    return Evaluation(
        environment=policy.environment.value,
        policy_version=policy.version,
        verdict=Outcome.FAILED if failed else Outcome.PASSED,
        reasons=tuple(reasons),
        counts=MappingProxyType({s: counts.get(s, 0) for s in SEVERITY_ORDER}),
        blocking=tuple(f for f, _ in blocking),
        suppressed=tuple(suppressed),
        vulnerabilities_assessed=vulnerabilities_assessed,
    )


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    """Findings without repeats: Trivy reports a package once per layer path it sees it in."""
    return list(dict.fromkeys(findings))


def _suppression(
    finding: Finding, policy: Policy, now: datetime, image_digest: str | None
) -> str | None:
    for statement in policy.vex:
        if statement.covers(finding, image_digest):
            return statement.describe()
    for exception in policy.exceptions:
        if exception.covers(finding, now):
            return exception.describe()
    if finding.kind is FindingKind.VULNERABILITY and policy.ignore_unfixed and not finding.fixable:
        return "no fix available and the policy ignores unfixed vulnerabilities"
    return None


def _kind_rank(finding: Finding) -> int:
    # Secrets first: they fail whatever the severity, and need the most urgent action.
    return 0 if finding.kind is FindingKind.SECRET else 1


def _secret_reason(finding: Finding) -> str:
    return f"secret {finding.id} in {finding.target}"


def _license_reason(finding: Finding) -> str:
    package = f" (package {finding.package})" if finding.package else ""
    return f"license {finding.id} denied{package}"


def _severity_reason(finding: Finding, policy: Policy) -> str:
    limit = f"exceeds max severity {policy.max_severity.value}"
    severity = finding.severity.value
    if finding.kind is FindingKind.VULNERABILITY:
        where = f" in {finding.package}" if finding.package else ""
        installed = f" {finding.installed_version}" if finding.installed_version else ""
        fix = f"fixed in {finding.fixed_version}" if finding.fixable else "no fix yet"
        return f"{finding.id}{where}{installed} ({severity}, {fix}) {limit}"
    return (
        f"misconfiguration {finding.id} in {finding.target} ({severity}): {finding.title} {limit}"
    )


def _bounded(reasons: list[str]) -> list[str]:
    if len(reasons) <= MAX_REASONS:
        return reasons
    rest = len(reasons) - MAX_REASONS
    return [*reasons[:MAX_REASONS], f"and {rest} more finding(s) beyond the policy"]
