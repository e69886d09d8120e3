"""A deployment change and its commit message: a subject line and git trailers.

    deploy acme/fraud v8 to prod

    Mlplane-Action: deploy
    Mlplane-Change-Id: 6f1c...
    Mlplane-Model: acme/fraud
    ...

Trailers are what `git interpret-trailers --parse` reads, so people and tools
read the same fields. A value carrying a line break could forge another field;
such values are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mlplane_deployer.domain.errors import InvalidChangeMessage

CHANGE_ID = "Mlplane-Change-Id"
REVERTS = "Mlplane-Reverts"
_SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ChangeAction(StrEnum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    CANARY = "canary"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class DeploymentChange:
    """One change to one model and environment; `change_id` makes it idempotent."""

    change_id: str
    action: ChangeAction
    team: str
    model: str
    version: int
    digest: str
    environment: str
    directory: str
    requested_by: str
    approvals: tuple[str, ...] = ()
    policy_version: int = 0
    trace_id: str | None = None
    canary_weight: int | None = None
    removes: bool = False
    """A rollback of the first deployment there: nothing to go back to, `version` goes."""

    def __post_init__(self) -> None:
        """Raises `InvalidChangeMessage` for a bad change id or a value with control chars."""
        if not _CHANGE_ID.match(self.change_id):
            raise InvalidChangeMessage(f"{self.change_id!r} is not a change id")
        for value in (
            self.team,
            self.model,
            self.digest,
            self.environment,
            self.directory,
            self.requested_by,
            *self.approvals,
            self.trace_id or "",
        ):
            if not _SAFE_VALUE.match(value):
                raise InvalidChangeMessage("a change's fields are single lines", value=value[:80])
        if any("," in principal for principal in self.approvals):
            raise InvalidChangeMessage("an approver's name has no comma (approvers are listed)")

    def message(self, reverts: str | None = None) -> str:
        """The commit message; `reverts` is the commit a rollback undoes."""
        back_to = f"removing v{self.version}" if self.removes else f"to v{self.version}"
        subject = {
            ChangeAction.ROLLBACK: f"roll back {self.team}/{self.model} in {self.environment} "
            f"{back_to}",
            ChangeAction.CANARY: f"canary {self.team}/{self.model} v{self.version} at "
            f"{self.canary_weight}% in {self.environment}",
        }.get(
            self.action,
            f"{self.action.value} {self.team}/{self.model} v{self.version} to {self.environment}",
        )
        trailers = [
            ("Mlplane-Action", self.action.value),
            (CHANGE_ID, self.change_id),
            ("Mlplane-Team", self.team),
            ("Mlplane-Model", self.model),
            ("Mlplane-Version", str(self.version)),
            ("Mlplane-Digest", self.digest),
            ("Mlplane-Environment", self.environment),
            ("Mlplane-Requested-By", self.requested_by),
            ("Mlplane-Approved-By", ", ".join(self.approvals) or "-"),
            ("Mlplane-Policy-Version", str(self.policy_version)),
            ("Mlplane-Trace-Id", self.trace_id or "-"),
        ]
        if self.canary_weight is not None:
            trailers.append(("Mlplane-Canary-Weight", str(self.canary_weight)))
        if reverts is not None:
            trailers.append((REVERTS, reverts))
        body = "\n".join(f"{key}: {value}" for key, value in trailers)
        return f"{subject}\n\n{body}\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The `Mlplane-*` trailers of a commit message, by name."""
    found: dict[str, str] = {}
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Mlplane-"):
            found[key] = value
    return found
