"""The gateway as a plug-in of the mlplane platform: `plugin` is its entry point.

`Gateway` is the composition root: settings in, routers and the clients they use
(Redis, the JWKS fetcher) out; tests build the same one. The gateway's routes are
mounted at the root (`/v1/...`), the public face of the platform.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter
from mlplane_runtime.service import ServiceContext, ServicePlugin
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_gateway import ingress_api, keys_api
from mlplane_gateway.authentication import Authenticator, Gatekeeper
from mlplane_gateway.domain.token_bucket import BucketLimit
from mlplane_gateway.oidc import OidcVerifier, signing_keys
from mlplane_gateway.rate_limits import (
    InProcessRateLimiter,
    NoRateLimit,
    RateLimiter,
    RedisRateLimiter,
)
from mlplane_gateway.security import Guard
from mlplane_gateway.settings import GatewaySettings, load_settings
from mlplane_gateway.store import SCHEMA, GatewayTables, define_tables

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class Gateway:
    """The gateway's parts for one hosting: build (connects to nothing), serve, `aclose`."""

    def __init__(
        self,
        settings: GatewaySettings,
        tables: GatewayTables,
        uow_factory: UnitOfWorkFactory,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        """Raises ValueError for an inline JWKS that cannot be used."""
        self.settings = settings
        self.tables = tables
        self.uow_factory = uow_factory
        self.limiter = rate_limiter(settings, runtime)
        self.oidc = oidc_verifier(settings)
        self.authenticator = Authenticator(
            uow_factory,
            tables,
            settings.pepper(),
            bootstrap_key=(
                settings.bootstrap_admin_key.get_secret_value()
                if settings.bootstrap_admin_key
                else None
            ),
            oidc=self.oidc,
        )
        self.guard = Guard(Gatekeeper(self.authenticator, self.limiter))

    def routers(self) -> Sequence[APIRouter]:
        pepper = self.settings.pepper()
        return [
            keys_api.router(self.tables, self.uow_factory, self.guard, pepper),
            ingress_api.router(
                self.tables, self.uow_factory, self.guard, pepper, self.settings.max_body_bytes
            ),
        ]

    async def aclose(self) -> None:
        await self.limiter.aclose()
        if self.oidc is not None:
            await self.oidc.keys.aclose()


def rate_limiter(settings: GatewaySettings, runtime: RuntimeSettings | None) -> RateLimiter:
    """Redis when a URL is configured, else in-process buckets; none when disabled."""
    if not settings.rate_limit_enabled:
        return NoRateLimit()
    key_limit = BucketLimit(settings.key_rate_per_s, settings.key_burst)
    team_limit = BucketLimit(settings.team_rate_per_s, settings.team_burst)
    url = settings.effective_redis_url(runtime)
    if url is None:
        return InProcessRateLimiter(key_limit=key_limit, team_limit=team_limit)
    return RedisRateLimiter.from_url(
        url,
        timeout_s=settings.redis_timeout_s,
        key_limit=key_limit,
        team_limit=team_limit,
        prefix=settings.rate_limit_key_prefix,
        fail_open=settings.rate_limit_fail_open,
    )


def oidc_verifier(settings: GatewaySettings) -> OidcVerifier | None:
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


def make_plugin(name: str = "gateway", schema: str = SCHEMA) -> ServicePlugin:
    """The gateway called `name`, keeping its tables in `schema` (tests use throwaway ones).

    A bad `MLPLANE_GATEWAY_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    # Per hosting context (keyed by its id), built when the host starts the service.
    hosted: dict[int, Gateway] = {}

    def gateway_of(context: ServiceContext) -> Gateway:
        found = hosted.get(id(context))
        if found is None:
            found = hosted[id(context)] = Gateway(
                load_settings(), tables, context.uow_factory, context.settings
            )
        return found

    def routers(context: ServiceContext) -> Sequence[APIRouter]:
        return gateway_of(context).routers()

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        gateway_of(context)  # settings fail the start here, not on the first request
        try:
            yield
        finally:
            gateway = hosted.pop(id(context), None)
            if gateway is not None:
                await gateway.aclose()

    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        routers=routers,
        lifespan=lifespan,
        url_prefix="",
    )


plugin = make_plugin()
