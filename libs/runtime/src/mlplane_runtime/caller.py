"""Who calls a service: the team, principal and scopes of a request, as FastAPI dependencies.

Behind the gateway, a service learns its caller from the identity the gateway
signs for it (`X-Mlplane-Identity`, see `forwarded_identity`). Every service
REQUIRES that token on every route, in every mode: no header is trusted on its
own. The plain `X-Mlplane-Team` header counts only for the operator, whose token
names no team, to say which team it acts for.

The key: `MLPLANE_<SERVICE>_IDENTITY_KEY` (hex of the service's own key, the
production choice: a service holds nothing that signs for another), else derived
from `MLPLANE_IDENTITY_SECRET` or the platform's secret (see `identity_secret`).
"""

# No `from __future__ import annotations`: FastAPI resolves the dependencies' annotations.
import binascii
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from mlplane_contracts.types import DNS_LABEL_PATTERN
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_runtime.errors import Forbidden, InvalidInput
from mlplane_runtime.forwarded_identity import (
    IDENTITY_HEADER,
    TEAM_HEADER,
    ForwardedIdentity,
    InvalidForwardedIdentity,
    derive_identity_key,
    is_current,
    verify_forwarded_identity,
)

MIN_KEY_BYTES = 32
_VERIFIED_KEPT = 4096
"""Verified tokens an `IdentityVerifier` remembers."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

TeamHeader = Annotated[
    str | None,
    Header(alias=TEAM_HEADER, min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
]
IdentityHeader = Annotated[
    str | None,
    Header(alias=IDENTITY_HEADER, description="The caller's identity, signed by the gateway."),
]


class _SharedSecret(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLPLANE_", extra="ignore")

    identity_secret: SecretStr | None = None


class _ServiceKey(BaseSettings):
    # The prefix is the service's own (`_env_prefix` at construction).
    model_config = SettingsConfigDict(extra="ignore")

    identity_key: SecretStr | None = None


def shared_identity_secret() -> bytes | None:
    """`MLPLANE_IDENTITY_SECRET` from the environment, None when unset.

    Raises InvalidInput when it is shorter than 32 characters.
    """
    try:
        shared = _SharedSecret().identity_secret
    except ValidationError as exc:
        raise InvalidInput(f"invalid identity settings: {exc}") from None
    if shared is None:
        return None
    secret = shared.get_secret_value().encode()
    if len(secret) < MIN_KEY_BYTES:
        raise InvalidInput(f"MLPLANE_IDENTITY_SECRET must be at least {MIN_KEY_BYTES} bytes")
    return secret


def identity_key(service: str, shared_secret: bytes | None = None) -> bytes | None:
    """The key `service` verifies forwarded identities with; None: none configured.

    Its own `MLPLANE_<SERVICE>_IDENTITY_KEY`, else derived from
    `MLPLANE_IDENTITY_SECRET`, else from `shared_secret` (the platform's).
    Raises InvalidInput naming the variable when a configured value cannot be a key
    (not hex, or shorter than 32 bytes).
    """
    prefix = f"MLPLANE_{service.upper().replace('-', '_')}_"
    try:
        own = _ServiceKey(_env_prefix=prefix).identity_key  # type: ignore[call-arg]
    except ValidationError as exc:
        raise InvalidInput(f"invalid identity settings: {exc}") from None
    if own is not None:
        try:
            key = bytes.fromhex(own.get_secret_value().strip())
        except (ValueError, binascii.Error):
            raise InvalidInput(f"{prefix}IDENTITY_KEY must be hex") from None
        if len(key) < MIN_KEY_BYTES:
            raise InvalidInput(f"{prefix}IDENTITY_KEY must be at least {MIN_KEY_BYTES} bytes")
        return key
    secret = shared_identity_secret() or shared_secret
    return None if secret is None else derive_identity_key(secret, service)


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller of one request.

    `team` is the team it acts for (None: the operator, naming no team);
    `principal` names it in audit fields; `scopes` is what it may do.
    """

    team: str | None
    principal: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def sees(self, team: str | None) -> bool:
        """True when this caller may see `team`'s things (the operator sees every team's)."""
        return self.team is None or self.team == team


CallerDependency = Callable[..., Awaitable[Caller]]
"""A FastAPI dependency answering the request's verified `Caller` (401 when there is none)."""


@dataclass(frozen=True, slots=True)
class IdentityVerifier:
    """Verifies the gateway's identity tokens for one `audience` (a service) with its key.

    A token seen again is not verified again until it expires: its signature, issuer
    and audience cannot have changed, and its times are checked on every use. (A
    client sending the same token with each request of its keep-alive connection
    paid a fifth of a cached read's CPU for the HMAC and JSON of each.)

    Raises ValueError at construction for a key shorter than 32 bytes.
    """

    audience: str
    key: bytes = field(repr=False)
    _verified: dict[str, ForwardedIdentity] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"an identity key must be at least {MIN_KEY_BYTES} bytes")

    def caller(self, identity: str | None, team_header: str | None) -> Caller:
        """The caller `identity` names (`team_header` counts for the operator only).

        Raises InvalidForwardedIdentity (401) for a missing, forged, expired or
        misaddressed token.
        """
        if identity is None:
            raise InvalidForwardedIdentity(
                f"this service is reached through the gateway only ({IDENTITY_HEADER} missing)"
            )
        verified = self._verified.get(identity)
        if verified is None or not is_current(verified):
            verified = verify_forwarded_identity(identity, audience=self.audience, key=self.key)
            if len(self._verified) >= _VERIFIED_KEPT:
                self._verified.clear()  # tokens live a minute: what is dropped is soon stale
            self._verified[identity] = verified
        return caller_of(verified, team_header)


@dataclass(frozen=True)
class CallerDependencies:
    """FastAPI dependencies for a service's routes: `Annotated[str, Depends(deps.team)]`.

    `caller` resolves once per request (FastAPI caches it), `team` and
    `principal` read from it; `scoped` and `require` check scopes. `verifier` is
    what `caller` verifies with, when it verifies the gateway's identity.
    """

    caller: CallerDependency
    team: Callable[..., Awaitable[str]]
    optional_team: Callable[..., Awaitable[str | None]]
    principal: Callable[..., Awaitable[str]]
    verifier: IdentityVerifier | None = None

    def require(self, scope: str) -> Callable[..., Awaitable[Caller]]:
        """A dependency answering the caller once it holds `scope` (403 otherwise)."""
        resolve = self.caller

        async def holding(caller: Annotated[Caller, Depends(resolve)]) -> Caller:
            require_scope(caller, scope)
            return caller

        return holding

    def scoped(
        self, *, read: str, write: str, read_only_posts: Collection[str] = ()
    ) -> Callable[..., Awaitable[Caller]]:
        """A router-wide dependency: safe methods need `read`, every other method `write`.

        `read_only_posts` lists route paths (as written on the route, e.g.
        `/registered-models/get-latest-versions`) whose POST only reads.
        """
        resolve = self.caller
        reads = frozenset(read_only_posts)

        async def scoped(request: Request, caller: Annotated[Caller, Depends(resolve)]) -> Caller:
            route = request.scope.get("route")
            path = getattr(route, "path", "")
            reading = request.method in SAFE_METHODS or (
                request.method == "POST" and any(path.endswith(p) for p in reads)
            )
            require_scope(caller, read if reading else write)
            return caller

        return scoped


def require_scope(caller: Caller, scope: str) -> None:
    """Raises Forbidden (403) naming `scope` when `caller` does not hold it."""
    if not caller.has(scope):
        raise Forbidden(f"this call needs the scope {scope!r}", required_scope=scope)


def dependencies_of(
    resolve: CallerDependency, verifier: IdentityVerifier | None = None
) -> CallerDependencies:
    """`team`, `optional_team`, `principal`, `scoped` and `require` on top of `resolve`,
    the dependency answering the request's verified caller.

    `team` raises InvalidInput (422, `errors` naming the header) when the caller acts
    for no team (the operator without `X-Mlplane-Team`).
    """
    Resolved = Annotated[Caller, Depends(resolve)]

    async def team_of(resolved: Resolved) -> str:
        if resolved.team is None:
            # The same shape as a request-validation error, as before this dependency.
            raise InvalidInput(
                f"the {TEAM_HEADER} header is required",
                errors=[
                    {
                        "field": f"header.{TEAM_HEADER}",
                        "message": "Field required",
                        "type": "missing",
                    }
                ],
            )
        return resolved.team

    async def optional_team_of(resolved: Resolved) -> str | None:
        return resolved.team

    async def principal_of(resolved: Resolved) -> str:
        return resolved.principal

    return CallerDependencies(
        caller=resolve,
        team=team_of,
        optional_team=optional_team_of,
        principal=principal_of,
        verifier=verifier,
    )


def caller_dependencies(audience: str, key: bytes) -> CallerDependencies:
    """Dependencies that require a forwarded identity for `audience` signed with `key`.

    Raised to the request: InvalidForwardedIdentity (401) for a missing or bad
    token; InvalidInput (422, `errors` naming the header) when no team is known
    where one is required. Raises ValueError for a key shorter than 32 bytes.
    """
    verifier = IdentityVerifier(audience, key)

    async def caller(identity: IdentityHeader = None, team_header: TeamHeader = None) -> Caller:
        return verifier.caller(identity, team_header)

    return dependencies_of(caller, verifier)


def caller_of(verified: ForwardedIdentity, team_header: str | None) -> Caller:
    """The caller a verified identity names; only the operator (no team in its token)
    takes the team it acts for from `team_header`."""
    acting_for = verified.team if verified.team is not None else team_header
    return Caller(team=acting_for, principal=verified.principal, scopes=verified.scopes)
