"""Per-finding exceptions: a named person accepts one finding for a while, for a reason.

Unlike a list-wide expiry, each exception carries its own owner, reason and
expiry date, so one lapsed acceptance never silently renews the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlplane_scanner.domain.errors import InvalidPolicy
from mlplane_scanner.domain.findings import Finding, FindingKind

MAX_FIELD = 1024


@dataclass(frozen=True, slots=True)
class FindingException:
    """Accept finding `finding_id` (optionally only in `package`) until `expires_at`.

    Secrets are never excepted (a leaked secret must be rotated and removed, not
    waived), so an exception only ever covers vulnerabilities, misconfigurations
    and denied licenses.
    """

    finding_id: str
    owner: str
    reason: str
    expires_at: datetime
    package: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        """Raises `InvalidPolicy` for an empty or oversized field or a naive expiry."""
        for name in ("finding_id", "owner", "reason"):
            value = getattr(self, name)
            if not value.strip() or len(value) > MAX_FIELD:
                raise InvalidPolicy(
                    f"exception {name} must be 1 to {MAX_FIELD} characters, not blank",
                    field=name,
                )
        if self.package is not None and not self.package.strip():
            raise InvalidPolicy("exception package must not be blank", field="package")
        if self.expires_at.tzinfo is None:
            raise InvalidPolicy("exception expires_at must carry a time zone", field="expires_at")

    @property
    def key(self) -> tuple[str, str | None]:
        """What identifies it in a policy: adding the same key replaces the old one."""
        return (self.finding_id, self.package)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at

    def covers(self, finding: Finding, now: datetime) -> bool:
        """True when this exception accepts `finding` at `now` (expired ones never do)."""
        return (
            finding.kind is not FindingKind.SECRET
            and finding.id == self.finding_id
            and (self.package is None or finding.package == self.package)
            and self.active(now)
        )

    def describe(self) -> str:
        scope = f" in {self.package}" if self.package else ""
        return (
            f"exception for {self.finding_id}{scope} by {self.owner} until "
            f"{self.expires_at.isoformat()}: {self.reason}"
        )
