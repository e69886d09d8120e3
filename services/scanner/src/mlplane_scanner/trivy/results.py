"""What one image scan returns to the scanner service."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.findings import Finding
from .database import DbVersion


@dataclass(frozen=True, slots=True)
class ImageScanResult:
    """One finished scan of one image.

    `report` is Trivy's raw JSON (kept in object storage); `findings` are read from
    it. `vulnerabilities_assessed` is False when no vulnerability database could be
    had: then only secrets, misconfigurations and licenses were looked for, and
    `not_assessed_reason` says why. `db` is the database the scan used.
    """

    target: str
    report: bytes
    findings: tuple[Finding, ...]
    vulnerabilities_assessed: bool
    not_assessed_reason: str | None
    db: DbVersion | None
    trivy_version: str | None
    repo_digests: tuple[str, ...]
    seconds: float
