"""The gateway as a plug-in of the mlplane platform: `plugin` is its entry point.

`Gateway` is the composition root: settings in, routers, the event handlers and
the clients they use (Redis, the JWKS fetcher, the services' and the sinks' HTTP
clients, the delivery dispatcher) out; tests build the same one. The gateway's
routes are mounted at the root (`/v1/...`), the public face of the platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path

import httpx
from fastapi import APIRouter
from mlplane_contracts.topology import CONSUMES
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.per_host import PerHost
from mlplane_runtime.service import ENTRY_POINT_GROUP, ServiceContext, ServicePlugin
from mlplane_runtime.settings import RuntimeSettings, load_settings
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_gateway import ingress_api, keys_api, subscriptions_api
from mlplane_gateway.authentication import Authenticator, Gatekeeper
from mlplane_gateway.domain.principals import Scope
from mlplane_gateway.domain.token_bucket import BucketLimit
from mlplane_gateway.facade.identity import IdentitySigner
from mlplane_gateway.facade.routes import facade_router
from mlplane_gateway.facade.upstreams import Upstreams
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.initial_admin import ensure_initial_admin_key
from mlplane_gateway.key_cache import RevocationListener, VerifiedKeys
from mlplane_gateway.oidc import OidcVerifier, signing_keys
from mlplane_gateway.rate_limits import (
    InProcessRateLimiter,
    NoRateLimit,
    RateLimiter,
    RedisRateLimiter,
)
from mlplane_gateway.security import Guard
from mlplane_gateway.settings import GatewaySettings, platform_url
from mlplane_gateway.store import SCHEMA, GatewayTables, define_tables
from mlplane_gateway.subscriptions.delivery import USER_AGENT, Dispatcher
from mlplane_gateway.subscriptions.sinks import SinkChecker
from mlplane_gateway.subscriptions.store import (
    PostgresDeliveries,
    PostgresEventSource,
    subscription_event_handler,
)
from mlplane_gateway.subscriptions.stream import stream_router

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
SUBSCRIBED_TYPES = CONSUMES["gateway"]
"""What subscribers and the stream can see: the types the gateway's queue is bound to."""
_STOP_S = 30.0

_log = logging.getLogger("mlplane.gateway")


def installed_services() -> frozenset[str]:
    """Names of the services installed here (entry points read, not loaded)."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


class Gateway:
    """The gateway's parts for one hosting: build (connects to nothing), serve, `aclose`."""

    def __init__(
        self,
        settings: GatewaySettings,
        tables: GatewayTables,
        uow_factory: UnitOfWorkFactory,
        runtime: RuntimeSettings | None = None,
        *,
        installed: frozenset[str] = frozenset(),
        platform_identity_secret: bytes | None = None,
    ) -> None:
        """`runtime` is the hosting platform's settings: services in `installed` that
        have no URL set are reached at the platform's own address.
        `platform_identity_secret` is the hosting platform's identity secret: what the
        gateway signs forwarded identities with unless its own setting names one.

        Raises ValueError for an inline JWKS or an upstream URL that cannot be used.
        """
        self.settings = settings
        self.tables = tables
        self.uow_factory = uow_factory
        self.limiter = rate_limiter(settings, runtime)
        self.oidc = oidc_verifier(settings)
        self.verified_keys: VerifiedKeys | None = None
        self.revocations: RevocationListener | None = None
        if settings.api_key_cache_s > 0:
            self.verified_keys = VerifiedKeys(
                ttl_s=settings.api_key_cache_s, max_keys=settings.api_key_cache_size
            )
            self.revocations = RevocationListener(
                uow_factory.database, tables.metadata.schema or SCHEMA, self.verified_keys
            )
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
            keys=self.verified_keys,
        )
        self.guard = Guard(Gatekeeper(self.authenticator, self.limiter))
        self.upstreams = Upstreams.build(
            settings.upstream_urls(platform_url(runtime), installed), settings.upstream_limits()
        )
        self.signer = IdentitySigner(
            settings.identity_key(platform_identity_secret),
            lifetime_s=settings.identity_lifetime_s,
        )
        self.sink_checker = SinkChecker(settings.allowlist())
        self.events = PostgresEventSource(
            uow_factory.database, tables.subscriptions, poll_s=settings.delivery_poll_s
        )
        self._sink_client = httpx.AsyncClient(
            # A redirect would reach a URL the sink check never saw.
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=settings.delivery_concurrency),
        )
        self.dispatcher = Dispatcher(
            PostgresDeliveries(uow_factory.database, tables.subscriptions),
            self._sink_client,
            check_sink=self.sink_checker,
            schedule=settings.retry_schedule(),
            concurrency=settings.delivery_concurrency,
            concurrency_per_sink=settings.delivery_concurrency_per_sink,
            timeout_s=settings.delivery_timeout_s,
            lease_s=max(60.0, settings.delivery_timeout_s * 3),
            poll_s=settings.delivery_poll_s,
        )
        self._dispatching = False

    def routers(self) -> Sequence[APIRouter]:
        pepper = self.settings.pepper()
        guard = self.guard
        return [
            keys_api.router(
                self.tables,
                self.uow_factory,
                guard,
                pepper,
                on_revoked=self.verified_keys.evict if self.verified_keys else None,
            ),
            ingress_api.router(
                self.tables, self.uow_factory, guard, pepper, self.settings.max_body_bytes
            ),
            subscriptions_api.router(
                self.tables.subscriptions,
                self.uow_factory,
                guard,
                self.sink_checker,
                wake_dispatcher=self.dispatcher.wake,
                max_per_team=self.settings.max_subscriptions_per_team,
            ),
            stream_router(
                self.events,
                guard.authenticated(),
                guard.require_scope,
                keepalive_s=self.settings.stream_keepalive_s,
                route_class=GatewayRoute,
                openapi_extra=guard.doc(Scope.EVENTS_SUBSCRIBE),
            ),
            facade_router(
                self.upstreams,
                authenticate=guard.request_caller(),
                require_scope=guard.require_scope,
                signer=self.signer,
            ),
        ]

    def handlers(self) -> Mapping[str, EventHandler]:
        """Every consumed event is recorded for subscriptions and the stream."""
        handler = subscription_event_handler(self.tables.subscriptions, self._event_recorded)
        return {event_type: handler for event_type in SUBSCRIBED_TYPES}

    def _event_recorded(self) -> None:
        self.events.changed()
        self.dispatcher.wake()

    async def prepare(self, data_dir: Path) -> None:
        """What a hosted start does before `start`: warn about the built-in development
        secret key, and make the initial admin key on the very first start (see
        `initial_admin`). Raises what the database or writing the key's file raises."""
        if self.settings.uses_dev_secret_key:
            warn_dev_secret_key()
        if self.settings.initial_admin_key and self.settings.bootstrap_admin_key is None:
            await ensure_initial_admin_key(
                self.uow_factory, self.tables, self.settings.pepper(), data_dir
            )

    def start(self) -> None:
        """Start listening for key revocations (which turns the key cache on) and
        delivering to subscribers (on the running event loop)."""
        if self.revocations is not None:
            self.revocations.start()
        if not self._dispatching:
            self._dispatching = True
            self.dispatcher.start()

    async def aclose(self) -> None:
        """Stop the dispatcher (deliveries in flight get their timeout), close every client."""
        dispatching, self._dispatching = self._dispatching, False
        if dispatching:
            try:
                await asyncio.wait_for(self.dispatcher.stop(), _STOP_S)
            except Exception:
                _log.exception("the delivery dispatcher did not stop cleanly")
        if self.revocations is not None:
            await self.revocations.aclose()
        await self._sink_client.aclose()
        await self.upstreams.aclose()
        await self.limiter.aclose()
        if self.oidc is not None:
            await self.oidc.keys.aclose()


def warn_dev_secret_key() -> None:
    """One warning line: API keys and webhook secrets hang on a key anyone can read."""
    _log.warning(
        "MLPLANE_GATEWAY_SECRET_KEY is not set: using the built-in development secret key,"
        " which is public; API keys and webhook secrets made now are only fit for"
        " development (set a secret key of your own; changing it invalidates them)",
        extra={"secret_key": "built-in development key"},
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
    # Built when a host starts the service, never at import (discovery).
    gateway_of = PerHost(
        lambda context: Gateway(
            load_settings(GatewaySettings),
            tables,
            context.uow_factory,
            context.settings,
            installed=installed_services(),
            platform_identity_secret=context.identity_secret,
        )
    )

    def routers(context: ServiceContext) -> Sequence[APIRouter]:
        return gateway_of(context).routers()

    def handlers(context: ServiceContext) -> Mapping[str, EventHandler]:
        return gateway_of(context).handlers()

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        await gateway_of(context).prepare(context.data_dir)
        gateway_of(context).start()
        try:
            yield
        finally:
            gateway = gateway_of.forget(context)
            if gateway is not None:
                await gateway.aclose()

    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        handlers=handlers,
        routers=routers,
        lifespan=lifespan,
        url_prefix="",
        own_caller=lambda context: gateway_of(context).guard.runtime_caller(),
    )


plugin = make_plugin()
