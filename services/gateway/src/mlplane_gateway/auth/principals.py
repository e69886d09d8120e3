"""Who is calling: principals, the scopes they hold and the teams they act for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mlplane_runtime.errors import NotFound


class Scope(StrEnum):
    """What a credential allows. Every gateway route declares the one it needs."""

    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"
    DEPLOY_WRITE = "deploy:write"
    DEPLOY_APPROVE = "deploy:approve"
    EVENTS_PUBLISH = "events:publish"
    EVENTS_SUBSCRIBE = "events:subscribe"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The known scopes among `values`; unknown ones are dropped (an IdP may add its own)."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(value) for value in values if value in known)


class PrincipalKind(StrEnum):
    API_KEY = "key"
    OIDC = "oidc"
    BOOTSTRAP = "bootstrap"
    """The operator's key from settings: every scope, every team (creates the first keys)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `team` is the tenant it acts for; None only for the bootstrap operator, who
    acts for every team. `id` names it in logs and audit fields
    (`apikey:<id>`, `user:<sub>`, `bootstrap`).
    """

    kind: PrincipalKind
    id: str
    team: str | None
    scopes: frozenset[Scope]
    expires_at: datetime | None = None

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    def acts_for(self, team: str) -> bool:
        """True when this principal may see and change `team`'s resources."""
        return self.team is None or self.team == team


def require_own_team(actor: Principal, team: str) -> None:
    """Raises NotFound (404) unless `actor` acts for `team`: another team's resources are
    "not found", so their existence does not leak."""
    if not actor.acts_for(team):
        raise NotFound(f"no team {team}")
