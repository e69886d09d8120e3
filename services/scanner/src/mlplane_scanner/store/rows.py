"""What the repository reads back: plain records, no SQLAlchemy objects leak out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ScanRow:
    id: int
    team: str
    model: str
    model_version: int
    repository: str
    digest: str
    state: str
    attempts: int
    error: str | None
    trivy_version: str | None
    db_version: str | None
    vulnerabilities_assessed: bool | None
    not_assessed_reason: str | None
    report_uri: str | None
    sbom_uri: str | None
    emitted_verdict: str | None
    emitted_policy_version: int | None
    requested_at: datetime
    finished_at: datetime | None
    traceparent: str | None
    tracestate: str | None

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    @classmethod
    def of(cls, row: Any) -> ScanRow:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class EvaluationRow:
    environment: str
    policy_version: int
    verdict: str
    reasons: list[str]
    counts: dict[str, int]
    suppressed: list[dict[str, Any]]
    evaluated_at: datetime
