"""The gateway's door for one hosting, built from settings: the authenticator (API keys,
the bootstrap key, OIDC), the verified-key cache and its revocation listener, the rate
limiter, and the `Guard` routes reach it through.

`build_auth` connects to nothing; `start()` starts listening for key revocations (which
turns the key cache on), `aclose()` closes every client it made.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_gateway.auth.authentication import Authenticator, Gatekeeper
from mlplane_gateway.auth.guard import Guard
from mlplane_gateway.auth.key_cache import RevocationListener, VerifiedKeys
from mlplane_gateway.auth.oidc import OidcVerifier, signing_keys
from mlplane_gateway.auth.rate_limits import (
    InProcessRateLimiter,
    NoRateLimit,
    RateLimiter,
    RedisRateLimiter,
)
from mlplane_gateway.auth.token_bucket import BucketLimit
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.tables import SCHEMA, GatewayTables


@dataclass(frozen=True, slots=True)
class GatewayAuth:
    """Authentication and rate limits of one hosting; `guard` is what routes use."""

    guard: Guard
    limiter: RateLimiter
    oidc: OidcVerifier | None
    verified_keys: VerifiedKeys | None
    """Verified API keys kept in memory; None when the cache is turned off."""
    revocations: RevocationListener | None

    def forget_key(self, key_id: str) -> None:
        """Drop a key this process may keep (once its revocation is committed), without
        waiting for the database's NOTIFY to come back."""
        if self.verified_keys is not None:
            self.verified_keys.evict(key_id)

    def start(self) -> None:
        """Listen for key revocations (on the running loop): the key cache is used
        only while that connection is up; and for the rate limiter's failure blocks."""
        if self.revocations is not None:
            self.revocations.start()
        self.limiter.start()

    async def aclose(self) -> None:
        if self.revocations is not None:
            await self.revocations.aclose()
        await self.limiter.aclose()
        if self.oidc is not None:
            await self.oidc.keys.aclose()


def build_auth(
    settings: GatewaySettings,
    tables: GatewayTables,
    uow_factory: UnitOfWorkFactory,
    runtime: RuntimeSettings | None = None,
) -> GatewayAuth:
    """The door `settings` describe; `runtime` (the platform's settings) gives the Redis
    URL when the gateway names none. Raises ValueError for an inline JWKS that cannot
    be used."""
    limiter = rate_limiter(settings, runtime)
    oidc = oidc_verifier(settings)
    verified_keys: VerifiedKeys | None = None
    revocations: RevocationListener | None = None
    if settings.api_key_cache_s > 0:
        verified_keys = VerifiedKeys(
            ttl_s=settings.api_key_cache_s, max_keys=settings.api_key_cache_size
        )
        revocations = RevocationListener(
            uow_factory.database, tables.metadata.schema or SCHEMA, verified_keys
        )
    authenticator = Authenticator(
        uow_factory,
        tables,
        settings.pepper(),
        bootstrap_key=(
            settings.bootstrap_admin_key.get_secret_value()
            if settings.bootstrap_admin_key
            else None
        ),
        oidc=oidc,
        keys=verified_keys,
    )
    return GatewayAuth(
        guard=Guard(Gatekeeper(authenticator, limiter)),
        limiter=limiter,
        oidc=oidc,
        verified_keys=verified_keys,
        revocations=revocations,
    )


def rate_limiter(settings: GatewaySettings, runtime: RuntimeSettings | None) -> RateLimiter:
    """Redis when a URL is configured, else in-process buckets; none when disabled."""
    if not settings.rate_limit_enabled:
        return NoRateLimit()
    key_limit = BucketLimit(settings.key_rate_per_s, settings.key_burst)
    team_limit = BucketLimit(settings.team_rate_per_s, settings.team_burst)
    url = settings.effective_redis_url(runtime)
    if url is None:
        return InProcessRateLimiter(
            key_limit=key_limit, team_limit=team_limit, failure_limit=settings.failure_limit()
        )
    return RedisRateLimiter.from_url(
        url,
        timeout_s=settings.redis_timeout_s,
        key_limit=key_limit,
        team_limit=team_limit,
        prefix=settings.rate_limit_key_prefix,
        fail_open=settings.rate_limit_fail_open,
        failure_limit=settings.failure_limit(),
    )


def oidc_verifier(settings: GatewaySettings) -> OidcVerifier | None:
    """The JWT verifier, or None unless both issuer and audience are set."""
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        return None
    keys = signing_keys(
        str(settings.oidc_jwks_url) if settings.oidc_jwks_url else None,
        settings.oidc_jwks_json,
        cache_s=settings.oidc_jwks_cache_s,
        cooldown_s=settings.oidc_jwks_refresh_cooldown_s,
    )
    return OidcVerifier(
        keys,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        algorithms=settings.oidc_algorithms,
        team_claim=settings.oidc_team_claim,
        scopes_claim=settings.oidc_scopes_claim,
        subject_claim=settings.oidc_subject_claim,
        leeway_s=settings.oidc_leeway_s,
        require_nbf=settings.oidc_require_nbf,
    )
