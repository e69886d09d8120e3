"""What a scan found, normalised across Trivy's scanners: the input of every policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlplane_contracts.events import Severity

# Most severe first: a policy's "maximum allowed severity" compares by this rank.
SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.UNKNOWN,
)


def severity_rank(severity: Severity) -> int:
    """0 for critical, rising as severity falls; unknown ranks lowest."""
    return SEVERITY_ORDER.index(severity)


class FindingKind(StrEnum):
    VULNERABILITY = "vulnerability"
    SECRET = "secret"  # noqa: S105 (the kind of finding, not a password)
    MISCONFIGURATION = "misconfiguration"
    LICENSE = "license"


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding in one target of an image (or of a set of manifests).

    `id` is what exceptions and VEX statements name: the CVE/GHSA id of a
    vulnerability, the rule id of a secret (e.g. `aws-access-key-id`), the check id
    of a misconfiguration (e.g. `KSV017`), the license name of a license finding.
    """

    kind: FindingKind
    id: str
    severity: Severity
    title: str
    target: str
    package: str | None = None
    installed_version: str | None = None
    fixed_version: str | None = None
    layer: str | None = None

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_version)
