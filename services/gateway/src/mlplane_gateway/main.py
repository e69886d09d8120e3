"""The gateway as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too).

Its routes are mounted at the root (`/v1/...`), the public face of the platform, and
it authenticates its callers itself (`authenticates_callers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path

from mlplane_runtime.service import (
    ENTRY_POINT_GROUP,
    ServiceContext,
    ServiceParts,
    ServicePlugin,
)
from mlplane_runtime.settings import load_settings

from mlplane_gateway import mlflow_webhooks
from mlplane_gateway.auth.wiring import build_auth
from mlplane_gateway.console import api as console_api
from mlplane_gateway.deps import HostedGateway
from mlplane_gateway.facade.wiring import build_facade
from mlplane_gateway.ingress import api as ingress_api
from mlplane_gateway.keys import api as keys_api
from mlplane_gateway.keys.initial_admin import on_start
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions import api as subscriptions_api
from mlplane_gateway.subscriptions.wiring import build_subscriptions
from mlplane_gateway.tables import SCHEMA, GatewayTables, define_tables

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(
    context: ServiceContext,
    tables: GatewayTables,
    settings: GatewaySettings | None = None,
    *,
    installed: frozenset[str] = frozenset(),
) -> ServiceParts:
    """One hosted gateway on `tables`: settings from `MLPLANE_GATEWAY_*` unless given.
    Services in `installed` with no URL set are reached at the platform's own address.

    Connects to nothing (the lifespan starts the revocation listener and the delivery
    dispatcher). Raises InvalidInput naming each bad variable, ValueError for an inline
    JWKS or an upstream URL that cannot be used.
    """
    settings = settings or load_settings(GatewaySettings)
    auth = build_auth(settings, tables, context.uow_factory, context.settings)
    subscriptions = build_subscriptions(settings, context.database, tables.subscriptions)
    facade = build_facade(
        settings, context.settings, identity_secret=context.identity_secret, installed=installed
    )
    gateway = HostedGateway(settings, tables, auth, subscriptions, facade)
    facade_services, facade_mlflow = facade.routers(auth.guard)
    return ServiceParts(
        handlers=subscriptions.event_handlers(),
        routers=[
            # The hot path first: routes are tried in order, on every request (and
            # FastAPI's matching costs tens of microseconds per router passed). No route
            # of the routers after it is under /v1/<a facade service>/.
            facade_services,
            # Before the facade's MLflow routes, which forward the rest of
            # /api/2.0/mlflow/ to the registry.
            mlflow_webhooks.router,
            facade_mlflow,
            keys_api.router,
            ingress_api.router,
            subscriptions_api.router,
            console_api.root_router,
            console_api.router,
        ],
        lifespan=running(gateway, context),
        caller=auth.guard.runtime_caller(),
        resources=gateway,
    )


@asynccontextmanager
async def running(gateway: HostedGateway, context: ServiceContext) -> AsyncIterator[None]:
    """The first start's initial admin key, then key revocations listened for and
    deliveries made until the hosting stops; every client closed on the way out."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(gateway.aclose)
        await on_start(gateway.settings, context.uow_factory, gateway.tables, context.data_dir)
        gateway.start()
        yield


def installed_services() -> frozenset[str]:
    """Names of the services installed here (entry points read, not loaded)."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def make_plugin(name: str = "gateway", schema: str = SCHEMA) -> ServicePlugin:
    """The gateway called `name`, keeping its tables in `schema` (tests use throwaway ones).

    A bad `MLPLANE_GATEWAY_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        build=lambda context: build(context, tables, installed=installed_services()),
        url_prefix="",
        authenticates_callers=True,
    )


plugin = make_plugin()
