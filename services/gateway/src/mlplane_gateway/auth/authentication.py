"""Who is calling: an API key, the bootstrap operator key, or an OIDC JWT.

A revoked or expired key fails on its very next request. A key is checked
against its database row, or against the copy `VerifiedKeys` keeps of a row that
verified, which the database's NOTIFY drops the moment the key is revoked (see
`key_cache`); expiry is compared with the clock on every request either way.
Failures say why only once the caller has shown it holds the key (the hash
matched), so nothing is learned about keys one does not hold.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_gateway.auth.key_cache import VerifiedKeys
from mlplane_gateway.auth.oidc import OidcVerifier
from mlplane_gateway.auth.principals import ALL_SCOPES, Principal, PrincipalKind, Scope
from mlplane_gateway.auth.rate_limits import RateLimiter
from mlplane_gateway.errors import Forbidden, Unauthenticated
from mlplane_gateway.keys.domain import (
    PresentedKey,
    key_matches,
    looks_like_api_key,
    parse_key,
)
from mlplane_gateway.keys.store import ApiKeyStore
from mlplane_gateway.tables import GatewayTables

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is written at most this often per key (not a write per request); a
kept key is read again, and touched, once its time in the cache is up, so a key in
use shows a `last_used_at` at most this plus the cache's time-to-live old."""

BOOTSTRAP = Principal(kind=PrincipalKind.BOOTSTRAP, id="bootstrap", team=None, scopes=ALL_SCOPES)


def _now() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        tables: GatewayTables,
        pepper: bytes,
        *,
        bootstrap_key: str | None = None,
        oidc: OidcVerifier | None = None,
        keys: VerifiedKeys | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """`keys`: verified keys kept between requests (None: every request reads the row)."""
        self._uow_factory = uow_factory
        self._keys = keys
        self._tables = tables
        self._pepper = pepper
        self._bootstrap_key = bootstrap_key.encode() if bootstrap_key else None
        self._oidc = oidc
        self._clock = clock

    async def principal(self, token: str | None) -> Principal:
        """The principal `token` proves; Unauthenticated (401) saying why not."""
        if not token:
            raise Unauthenticated("no credential: send Authorization: Bearer <key>", error=None)
        if self._bootstrap_key is not None and hmac.compare_digest(
            token.encode(), self._bootstrap_key
        ):
            return BOOTSTRAP
        if looks_like_api_key(token):
            return await self._api_key_principal(token)
        if self._oidc is not None and token.count(".") == 2:
            return await self._oidc.principal(token)
        raise Unauthenticated("the credential is not valid")

    async def _api_key_principal(self, token: str) -> Principal:
        presented = parse_key(token)
        if presented is None:
            raise Unauthenticated("the API key is malformed")
        if self._keys is None:
            return await self._stored_key_principal(presented, None)
        kept = self._keys.get(presented.key_id)
        if kept is None:
            return await self._stored_key_principal(presented, self._keys.generation)
        if not key_matches(self._pepper, presented, kept.key_hash):
            raise Unauthenticated("the API key is not valid")
        if kept.expires_at is not None and self._clock() >= kept.expires_at:
            raise Unauthenticated("the API key has expired")
        return kept.principal

    async def _stored_key_principal(
        self, presented: PresentedKey, generation: int | None
    ) -> Principal:
        """Checks the key's row; a usable key is kept when `generation` (the cache's,
        taken before the read) is given."""
        async with self._uow_factory.reading() as uow:
            store = ApiKeyStore(uow.session, self._tables)
            key = await store.api_key(presented.key_id)
            if key is None or not key_matches(self._pepper, presented, key.key_hash):
                raise Unauthenticated("the API key is not valid")
            now = self._clock()
            if key.revoked_at is not None:
                raise Unauthenticated("the API key has been revoked")
            if key.expires_at is not None and now >= key.expires_at:
                raise Unauthenticated("the API key has expired")
            if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
                await store.touch_api_key(key.id, now)
        if generation is not None and self._keys is not None:
            self._keys.keep(key, generation)
        return key.principal()


def failure_names(token: str, client_address: str | None) -> list[str]:
    """What a failed authentication with `token` counts against: the client's address
    and, for something shaped like an API key, the key id it names."""
    names = [f"ip:{client_address}"] if client_address else []
    presented = parse_key(token) if looks_like_api_key(token) else None
    if presented is not None:
        names.append(f"key:{presented.key_id}")
    return names


class Gatekeeper:
    """Authenticates, rate-limits, then checks the route's scope, in that order:
    a caller without the scope still spends its tokens."""

    def __init__(self, authenticator: Authenticator, limiter: RateLimiter) -> None:
        self.authenticator = authenticator
        self.limiter = limiter

    async def admit(
        self, token: str | None, scope: Scope, client_address: str | None = None
    ) -> Principal:
        """The caller, allowed `scope`. Raises Unauthenticated (401), RateLimited
        (429), RateLimiterUnavailable (503) or Forbidden (403)."""
        principal = await self.enter(token, client_address)
        self.check_scope(principal, scope)
        return principal

    async def enter(self, token: str | None, client_address: str | None = None) -> Principal:
        """The caller, authenticated and rate-limited (scope not checked). Raises
        Unauthenticated (401), RateLimited (429) or RateLimiterUnavailable (503).

        A credential that fails counts against `client_address` and the key id it
        names; past the limit, attempts from there (or with that key id) are
        refused with 429 before the credential is checked."""
        if not token:
            # No credential is no guess: only presented credentials are counted.
            principal = await self.authenticator.principal(token)
        else:
            names = failure_names(token, client_address)
            await self.limiter.check_failures(names)
            try:
                principal = await self.authenticator.principal(token)
            except Unauthenticated:
                await self.limiter.record_failure(names)
                raise
        await self.limiter.take(principal)
        return principal

    @staticmethod
    def check_scope(principal: Principal, scope: Scope) -> None:
        """Raises Forbidden (403) naming `scope` unless `principal` holds it."""
        if not principal.has(scope):
            raise Forbidden(f"this credential lacks the {scope.value} scope", scope=scope.value)
