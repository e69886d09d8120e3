"""Who calls a service: the team and principal of a request, as FastAPI dependencies.

Behind the gateway, a service learns its caller from the identity the gateway
signs for it (`X-Mlplane-Identity`, see `forwarded_identity`). A service that
holds its identity key REQUIRES that token on every request and takes the team
and principal from it; the plain `X-Mlplane-Team` and `X-Mlplane-Principal`
headers count only where the token allows (the operator's token names no team,
so the header says which team it acts for). A service without a key (embedded
development, tests) trusts the headers as before: whoever can reach it directly
can act for any team, which is why production sets a key.

The key: `MLPLANE_<SERVICE>_IDENTITY_KEY` (hex of the service's own key, the
production choice: a service holds nothing that signs for another), else derived
from `MLPLANE_IDENTITY_SECRET` (one secret shared by a one-process platform and
its gateway), else none.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependencies' annotations.
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header
from mlplane_contracts.types import DNS_LABEL_PATTERN
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.forwarded_identity import (
    IDENTITY_HEADER,
    PRINCIPAL_HEADER,
    TEAM_HEADER,
    ForwardedIdentity,
    InvalidForwardedIdentity,
    derive_identity_key,
    verify_forwarded_identity,
)

ANONYMOUS = "user:anonymous"
MIN_KEY_BYTES = 32

TeamHeader = Annotated[
    str | None,
    Header(alias=TEAM_HEADER, min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
]
PrincipalHeader = Annotated[
    str | None, Header(alias=PRINCIPAL_HEADER, min_length=1, max_length=256)
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


def identity_key(service: str) -> bytes | None:
    """The key `service` verifies forwarded identities with, from the environment; None: none.

    Raises InvalidInput naming the variable when a configured value cannot be a key
    (not hex, or shorter than 32 bytes).
    """
    prefix = f"MLPLANE_{service.upper().replace('-', '_')}_"
    try:
        own = _ServiceKey(_env_prefix=prefix).identity_key  # type: ignore[call-arg]
        shared = _SharedSecret().identity_secret
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
    if shared is not None:
        secret = shared.get_secret_value().encode()
        if len(secret) < MIN_KEY_BYTES:
            raise InvalidInput(f"MLPLANE_IDENTITY_SECRET must be at least {MIN_KEY_BYTES} bytes")
        return derive_identity_key(secret, service)
    return None


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of one request: `identity` is None when the service trusts headers."""

    team: str | None
    principal: str
    identity: ForwardedIdentity | None


@dataclass(frozen=True)
class CallerDependencies:
    """FastAPI dependencies for a service's routes: `Annotated[str, Depends(deps.team)]`.

    `caller` resolves once per request (FastAPI caches it), `team` and
    `principal` read from it.
    """

    caller: Callable[..., Awaitable[Caller]]
    team: Callable[..., Awaitable[str]]
    optional_team: Callable[..., Awaitable[str | None]]
    principal: Callable[..., Awaitable[str]]
    verifies: bool
    """True when a forwarded identity is required (a key is configured)."""


def caller_dependencies(audience: str, key: bytes | None) -> CallerDependencies:
    """Dependencies that require a forwarded identity for `audience` signed with `key`
    (None: trust the team and principal headers).

    Raised to the request: InvalidForwardedIdentity (401) for a missing or bad
    token when a key is set; InvalidInput (422, `errors` naming the header) when no team
    is known where one is required.
    """

    async def caller(
        identity: IdentityHeader = None,
        team: TeamHeader = None,
        principal: PrincipalHeader = None,
    ) -> Caller:
        if key is None:
            return Caller(team=team, principal=principal or ANONYMOUS, identity=None)
        if identity is None:
            raise InvalidForwardedIdentity(
                f"this service is reached through the gateway only ({IDENTITY_HEADER} missing)"
            )
        verified = verify_forwarded_identity(identity, audience=audience, key=key)
        # Only the operator (no team in its token) names the team it acts for.
        acting_for = verified.team if verified.team is not None else team
        return Caller(team=acting_for, principal=verified.principal, identity=verified)

    Resolved = Annotated[Caller, Depends(caller)]

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
        caller=caller,
        team=team_of,
        optional_team=optional_team_of,
        principal=principal_of,
        verifies=key is not None,
    )


def service_caller(audience: str) -> CallerDependencies:
    """`caller_dependencies` with the key the environment configures for `audience`
    (see `identity_key`); call it where the service builds its routers."""
    return caller_dependencies(audience, identity_key(audience))
