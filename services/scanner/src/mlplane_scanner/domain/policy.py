"""A team's scan policy for one environment: data, versioned, edited through the API.

Every edit (a new threshold, an exception added or removed, a VEX document) makes
a new version; a verdict names the version it was decided by. A team that never
wrote a policy for an environment gets `default_policy` (version 0, never stored).

Defaults, per environment: findings above `medium` fail everywhere; unfixed
vulnerabilities count; a scan whose vulnerabilities could not be assessed (no
vulnerability database reachable) blocks `prod` only. Staging does not block on
it: staging is where a release is tried out, and the `prod` policy still stops
that image before it serves users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlplane_contracts.events import Environment, Severity

from mlplane_scanner.domain.errors import ExceptionNotFound, InvalidPolicy
from mlplane_scanner.domain.exceptions import FindingException
from mlplane_scanner.domain.vex import VexDocument, VexStatement

DEFAULT_MAX_SEVERITY = Severity.MEDIUM
MAX_LICENSES = 500
MAX_EXCEPTIONS = 5_000


def default_blocks_when_not_assessed(environment: Environment) -> bool:
    return environment is Environment.PROD


@dataclass(frozen=True, slots=True)
class Policy:
    """What a scan of `team`'s image must satisfy to pass in `environment`.

    - `max_severity`: the most severe vulnerability or misconfiguration allowed;
      anything more severe fails.
    - `ignore_unfixed`: vulnerabilities with no fixed version do not count.
    - `license_deny`: license names (SPDX ids, compared case-insensitively) that fail.
    - secrets always fail: no setting turns that off and no exception covers one.
    - `block_when_vulnerabilities_not_assessed`: fail when no vulnerability
      database was reachable for the scan.
    - `exceptions`: per-finding acceptances, each with its own expiry.
    - `vex`: statements from uploaded OpenVEX documents.
    """

    team: str
    environment: Environment
    version: int = 0
    max_severity: Severity = DEFAULT_MAX_SEVERITY
    ignore_unfixed: bool = False
    license_deny: frozenset[str] = frozenset()
    block_when_vulnerabilities_not_assessed: bool = False
    exceptions: tuple[FindingException, ...] = ()
    vex: tuple[VexStatement, ...] = ()
    updated_by: str | None = None
    updated_at: datetime | None = field(default=None, compare=False)

    secrets_fail = True  # not a field: policy data cannot change it

    def __post_init__(self) -> None:
        """Raises `InvalidPolicy` for a negative version or oversized lists."""
        if self.version < 0:
            raise InvalidPolicy("a policy version is never negative", field="version")
        if len(self.license_deny) > MAX_LICENSES:
            raise InvalidPolicy(f"at most {MAX_LICENSES} denied licenses", field="license_deny")
        if len(self.exceptions) > MAX_EXCEPTIONS:
            raise InvalidPolicy(f"at most {MAX_EXCEPTIONS} exceptions", field="exceptions")
        if any(not name.strip() for name in self.license_deny):
            raise InvalidPolicy("a denied license name must not be blank", field="license_deny")

    def denies_license(self, name: str) -> bool:
        folded = name.casefold()
        return any(denied.casefold() == folded for denied in self.license_deny)

    # -- edits: each returns the next version ---------------------------------------

    def next_version(self, by: str, at: datetime, **changes: Any) -> Policy:
        return replace(self, version=self.version + 1, updated_by=by, updated_at=at, **changes)

    def with_settings(
        self,
        *,
        max_severity: Severity,
        ignore_unfixed: bool,
        license_deny: Iterable[str],
        block_when_vulnerabilities_not_assessed: bool,
        by: str,
        at: datetime,
    ) -> Policy:
        """The next version with these settings; exceptions and VEX statements are kept."""
        return self.next_version(
            by,
            at,
            max_severity=max_severity,
            ignore_unfixed=ignore_unfixed,
            license_deny=frozenset(license_deny),
            block_when_vulnerabilities_not_assessed=block_when_vulnerabilities_not_assessed,
        )

    def with_exception(self, exception: FindingException, *, by: str, at: datetime) -> Policy:
        """The next version with `exception`, replacing one with the same finding and package."""
        kept = tuple(e for e in self.exceptions if e.key != exception.key)
        return self.next_version(by, at, exceptions=(*kept, exception))

    def without_exception(
        self, finding_id: str, package: str | None, *, by: str, at: datetime
    ) -> Policy:
        """The next version without that exception. Raises `ExceptionNotFound`."""
        kept = tuple(e for e in self.exceptions if e.key != (finding_id, package))
        if len(kept) == len(self.exceptions):
            scope = f" in {package}" if package else ""
            raise ExceptionNotFound(
                f"the {self.environment.value} policy has no exception for {finding_id}{scope}",
                finding_id=finding_id,
            )
        return self.next_version(by, at, exceptions=kept)

    def with_vex(self, document: VexDocument, *, by: str, at: datetime) -> Policy:
        """The next version with `document`'s statements, replacing an earlier upload of it."""
        kept = tuple(s for s in self.vex if s.document_id != document.id)
        return self.next_version(by, at, vex=(*kept, *document.statements))

    # -- stored form ----------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        """The policy's settings, exceptions and VEX statements as JSON (team, environment
        and version live in their own columns)."""
        return {
            "max_severity": self.max_severity.value,
            "ignore_unfixed": self.ignore_unfixed,
            "license_deny": sorted(self.license_deny),
            "block_when_vulnerabilities_not_assessed": self.block_when_vulnerabilities_not_assessed,
            "exceptions": [
                {
                    "finding_id": e.finding_id,
                    "package": e.package,
                    "owner": e.owner,
                    "reason": e.reason,
                    "expires_at": e.expires_at.isoformat(),
                    "created_at": None if e.created_at is None else e.created_at.isoformat(),
                }
                for e in self.exceptions
            ],
            "vex": [s.as_json() for s in self.vex],
        }

    @classmethod
    def from_json(
        cls,
        team: str,
        environment: Environment,
        version: int,
        data: Mapping[str, Any],
        *,
        updated_by: str | None = None,
        updated_at: datetime | None = None,
    ) -> Policy:
        return cls(
            team=team,
            environment=environment,
            version=version,
            max_severity=Severity(data["max_severity"]),
            ignore_unfixed=bool(data["ignore_unfixed"]),
            license_deny=frozenset(data.get("license_deny", ())),
            block_when_vulnerabilities_not_assessed=bool(
                data["block_when_vulnerabilities_not_assessed"]
            ),
            exceptions=tuple(
                FindingException(
                    finding_id=e["finding_id"],
                    package=e.get("package"),
                    owner=e["owner"],
                    reason=e["reason"],
                    expires_at=datetime.fromisoformat(e["expires_at"]),
                    created_at=None
                    if e.get("created_at") is None
                    else datetime.fromisoformat(e["created_at"]),
                )
                for e in data.get("exceptions", ())
            ),
            vex=tuple(VexStatement.from_json(s) for s in data.get("vex", ())),
            updated_by=updated_by,
            updated_at=updated_at,
        )


def default_policy(team: str, environment: Environment) -> Policy:
    """The policy of an environment whose team never wrote one (version 0)."""
    return Policy(
        team=team,
        environment=environment,
        block_when_vulnerabilities_not_assessed=default_blocks_when_not_assessed(environment),
    )
