"""The scanner's HTTP request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mlplane_contracts.events import Severity
from mlplane_contracts.types import NoControlCharacters
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from mlplane_scanner.domain.evaluation import Evaluation
from mlplane_scanner.domain.exceptions import FindingException
from mlplane_scanner.domain.findings import Finding
from mlplane_scanner.domain.policy import Policy
from mlplane_scanner.service import ScanView
from mlplane_scanner.store import ScanRow

Line = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024, strip_whitespace=True),
    NoControlCharacters,
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyIn(_In):
    max_severity: Severity
    """The most severe vulnerability or misconfiguration allowed."""
    ignore_unfixed: bool = False
    license_deny: list[Line] = Field(default_factory=list, max_length=500)
    block_when_vulnerabilities_not_assessed: bool


class ExceptionIn(_In):
    finding_id: Line
    owner: Line
    reason: Line
    expires_at: AwareDatetime
    package: Line | None = None

    def to_domain(self, created_at: datetime) -> FindingException:
        return FindingException(
            self.finding_id, self.owner, self.reason, self.expires_at, self.package, created_at
        )


class ExceptionOut(BaseModel):
    finding_id: str
    package: str | None
    owner: str
    reason: str
    expires_at: datetime
    active: bool


class VexStatementOut(BaseModel):
    vulnerability: str
    status: str
    products: list[str]
    justification: str | None
    document_id: str


class PolicyOut(BaseModel):
    team: str
    environment: str
    version: int
    """0: the default policy, never edited."""
    max_severity: Severity
    ignore_unfixed: bool
    license_deny: list[str]
    secrets_fail: bool
    block_when_vulnerabilities_not_assessed: bool
    exceptions: list[ExceptionOut]
    vex: list[VexStatementOut]
    updated_by: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, policy: Policy, now: datetime) -> PolicyOut:
        return cls(
            team=policy.team,
            environment=policy.environment.value,
            version=policy.version,
            max_severity=policy.max_severity,
            ignore_unfixed=policy.ignore_unfixed,
            license_deny=sorted(policy.license_deny),
            secrets_fail=policy.secrets_fail,
            block_when_vulnerabilities_not_assessed=policy.block_when_vulnerabilities_not_assessed,
            exceptions=[
                ExceptionOut(
                    finding_id=e.finding_id,
                    package=e.package,
                    owner=e.owner,
                    reason=e.reason,
                    expires_at=e.expires_at,
                    active=e.active(now),
                )
                for e in policy.exceptions
            ],
            vex=[
                VexStatementOut(
                    vulnerability=s.vulnerability,
                    status=s.status.value,
                    products=list(s.products),
                    justification=None if s.justification is None else s.justification.value,
                    document_id=s.document_id,
                )
                for s in policy.vex
            ],
            updated_by=policy.updated_by,
            updated_at=policy.updated_at,
        )


class FindingOut(BaseModel):
    kind: str
    id: str
    severity: str
    title: str
    target: str
    package: str | None
    installed_version: str | None
    fixed_version: str | None

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        return cls(
            kind=finding.kind.value,
            id=finding.id,
            severity=finding.severity.value,
            title=finding.title,
            target=finding.target,
            package=finding.package,
            installed_version=finding.installed_version,
            fixed_version=finding.fixed_version,
        )


class EvaluationOut(BaseModel):
    environment: str
    policy_version: int
    verdict: str
    reasons: list[str]
    counts: dict[str, int]
    suppressed: list[dict[str, Any]]

    @classmethod
    def of(cls, evaluation: Evaluation) -> EvaluationOut:
        return cls(
            environment=evaluation.environment,
            policy_version=evaluation.policy_version,
            verdict=evaluation.verdict.value,
            reasons=list(evaluation.reasons),
            counts={s.value: n for s, n in evaluation.counts.items()},
            suppressed=[
                {"id": s.finding.id, "kind": s.finding.kind.value, "why": s.why}
                for s in evaluation.suppressed
            ],
        )


class ScanSummaryOut(BaseModel):
    id: int
    model: str
    version: int
    image: str
    state: str
    verdict: str | None
    """The last verdict emitted in `image.scanned` (None before the first)."""
    error: str | None
    trivy_version: str | None
    vulnerability_db: str | None
    vulnerabilities_assessed: bool | None
    report_uri: str | None
    sbom_uri: str | None
    requested_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, scan: ScanRow) -> ScanSummaryOut:
        return cls(
            id=scan.id,
            model=scan.model,
            version=scan.model_version,
            image=scan.reference,
            state=scan.state,
            verdict=scan.emitted_verdict,
            error=scan.error,
            trivy_version=scan.trivy_version,
            vulnerability_db=scan.db_version,
            vulnerabilities_assessed=scan.vulnerabilities_assessed,
            report_uri=scan.report_uri,
            sbom_uri=scan.sbom_uri,
            requested_at=scan.requested_at,
            finished_at=scan.finished_at,
        )


class ScanOut(ScanSummaryOut):
    findings: list[FindingOut]
    verdicts: dict[str, EvaluationOut]
    """Per environment, under its current policy, evaluated at the time of the request."""

    @classmethod
    def of_view(cls, view: ScanView) -> ScanOut:
        summary = ScanSummaryOut.of(view.scan).model_dump()
        return cls(
            **summary,
            findings=[FindingOut.of(f) for f in view.findings],
            verdicts={env: EvaluationOut.of(e) for env, e in view.evaluations.items()},
        )


class ScanList(BaseModel):
    scans: list[ScanSummaryOut]
    next_before: int | None


class DigestScans(BaseModel):
    digest: str
    scans: list[ScanOut]


class ManifestScanOut(BaseModel):
    environment: str
    policy_version: int
    verdict: str
    reasons: list[str]
    counts: dict[str, int]
    findings: list[FindingOut]
