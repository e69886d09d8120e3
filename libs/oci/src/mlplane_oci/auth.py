"""Registry authentication: Bearer tokens (Harbor, Docker Hub, distribution) and Basic.

The registry says which it wants in a 401's `WWW-Authenticate`. For Bearer, a token
is fetched from the challenge's realm (`GET realm?service=..&scope=..`, with Basic
credentials when configured, anonymously otherwise) and cached per scope set until
it expires; once the realm is known, tokens for new scopes are fetched before the
request instead of after a 401. Credentials and tokens are never logged or put in
an error message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from mlplane_oci.challenge import AuthChallenge
from mlplane_oci.errors import (
    RegistryAuthFailed,
    RegistryUnavailable,
    describe_call,
    parse_error_body,
)
from mlplane_oci.stats import RequestStats

logger = logging.getLogger(__name__)

# Token lifetime when the token endpoint does not say (the distribution token spec).
DEFAULT_TOKEN_LIFETIME_S = 60.0
# Refresh this long before expiry so a token does not run out mid-request.
EXPIRY_MARGIN_S = 10.0


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """One scope per resource with the union of its actions, in a stable order.

    `repository:a:pull` and `repository:a:pull,push` become `repository:a:pull,push`.
    """
    actions: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, wanted = rest.rpartition(":")
        if not name:  # not `type:name:actions`: keep it as it came
            actions.setdefault((scope, ""), set())
            continue
        actions.setdefault((kind, name), set()).update(a for a in wanted.split(",") if a)
    merged = []
    for (kind, name), granted in sorted(actions.items()):
        merged.append(f"{kind}:{name}:{','.join(sorted(granted))}" if name else kind)
    return tuple(merged)


@dataclass(frozen=True)
class _CachedToken:
    token: str
    expires_at: float  # time.monotonic()


class RegistryAuth:
    """Holds the credentials and tokens for one registry; gives each request its header."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        stats: RequestStats,
        *,
        username: str | None,
        password: str | None,
    ) -> None:
        self._http = http
        self._stats = stats
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            if username is not None
            else None
        )
        self._bearer: AuthChallenge | None = None  # learned from the first Bearer 401
        self._use_basic = False
        self._tokens: dict[tuple[str, ...], _CachedToken] = {}
        self._lock = asyncio.Lock()

    async def authorization(self, scopes: Sequence[str]) -> str | None:
        """The `Authorization` value for a request needing `scopes`, if any is known yet."""
        if self._bearer is not None:
            return "Bearer " + await self._token(merge_scopes(scopes), refresh=False)
        if self._use_basic:
            return self._basic
        return None

    async def answer(self, challenges: Sequence[AuthChallenge], scopes: Sequence[str]) -> str:
        """Learn from a 401 how to authenticate; the `Authorization` to send the request with.

        Raises `RegistryAuthFailed` when the registry wants Basic and no credentials
        are configured, or names no scheme this client speaks.
        """
        by_scheme = {challenge.scheme: challenge for challenge in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.realm:
            self._bearer = bearer
            token = await self._token(merge_scopes([*scopes, *bearer.scopes]), refresh=True)
            return f"Bearer {token}"
        if "basic" in by_scheme:
            if self._basic is None:
                raise RegistryAuthFailed(
                    "the registry asks for Basic credentials and none are configured"
                )
            if self._use_basic:
                raise RegistryAuthFailed("the registry refused the configured Basic credentials")
            self._use_basic = True
            return self._basic
        schemes = ", ".join(sorted(by_scheme)) or "none"
        raise RegistryAuthFailed(f"the registry answered 401 with no usable challenge ({schemes})")

    async def _token(self, scopes: tuple[str, ...], *, refresh: bool) -> str:
        async with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and not refresh and cached.expires_at > time.monotonic():
                return cached.token
            fresh = await self._fetch_token(scopes)
            self._tokens[scopes] = fresh
            return fresh.token

    async def _fetch_token(self, scopes: tuple[str, ...]) -> _CachedToken:
        assert self._bearer is not None
        assert self._bearer.realm is not None
        params: list[tuple[str, str | int | float | bool | None]] = []
        if self._bearer.service:
            params.append(("service", self._bearer.service))
        params.extend(("scope", scope) for scope in scopes)
        headers = {"Authorization": self._basic} if self._basic else {}
        realm = self._bearer.realm
        call = describe_call("GET", realm)
        self._stats.requests[("GET", "token")] += 1
        started = time.monotonic()
        try:
            response = await self._http.get(realm, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailable(
                f"{call}: token endpoint did not answer ({type(exc).__name__})", call=call
            ) from exc
        if response.status_code in (401, 403):
            refused = RegistryAuthFailed.from_response(
                "GET", realm, response.status_code, response.content
            )
            who = "the configured credentials" if self._basic else "anonymous access"
            raise RegistryAuthFailed(
                f"token endpoint refused {who} for {' '.join(scopes)}: {refused.detail}",
                call=refused.call,
                http_status=refused.http_status,
                errors=refused.errors,
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise RegistryUnavailable.from_response(
                "GET", realm, response.status_code, response.content
            )
        if response.status_code != 200:
            raise RegistryAuthFailed.from_response(
                "GET", realm, response.status_code, response.content
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME_S)
        except (ValueError, AttributeError, TypeError):
            token, lifetime = None, 0.0
        if not isinstance(token, str) or not token:
            errors = parse_error_body(response.content)
            raise RegistryAuthFailed(f"{call}: 200 without a token", call=call, errors=errors)
        logger.debug("registry token fetched", extra={"scopes": scopes, "lifetime_s": lifetime})
        expires_at = started + max(0.0, lifetime - EXPIRY_MARGIN_S)
        return _CachedToken(token=token, expires_at=expires_at)
