"""The registry as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mlplane_runtime.caller import IdentityVerifier
from mlplane_runtime.listen import NotificationListener
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings

from mlplane_registry import api, artifacts_api, handlers
from mlplane_registry.artifacts.local_http import build_router
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_registry.artifacts.wiring import RegistryArtifacts, running, sweep_expired_uploads
from mlplane_registry.deps import HostedRegistry
from mlplane_registry.hot_reads import hot_routes
from mlplane_registry.hot_writes import hot_writes
from mlplane_registry.mlflow import api as mlflow_api
from mlplane_registry.mlflow.settings import MlflowApiSettings
from mlplane_registry.read_cache import ReadCache
from mlplane_registry.registration.reading import ArtifactReader
from mlplane_registry.registration.tracking import TrackingServer
from mlplane_registry.registration.worker import RegistrationConfig, RegistrationWorker
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import SCHEMA, RegistryTables, define_tables

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(
    context: ServiceContext,
    tables: RegistryTables,
    settings: RegistrySettings | None = None,
    mlflow_settings: MlflowApiSettings | None = None,
) -> ServiceParts:
    """One hosted registry on `tables`: settings from `MLPLANE_REGISTRY_*` unless given.

    Connects to nothing (the lifespan opens the artifact store). Raises InvalidInput
    naming each bad variable.
    """
    settings = settings or load_settings(RegistrySettings)
    mlflow_settings = mlflow_settings or load_settings(MlflowApiSettings)
    artifacts = RegistryArtifacts(settings, context)
    token = mlflow_settings.tracking_token
    tracking = (
        None
        if mlflow_settings.tracking_uri is None
        else TrackingServer(
            str(mlflow_settings.tracking_uri), None if token is None else token.get_secret_value()
        )
    )
    store = artifacts.store
    reader = ArtifactReader(
        store.client if isinstance(store, S3ArtifactStore) else None,
        tracking,
        mlflow_settings.registration_max_files,
    )
    registration = RegistrationWorker(
        context.name,
        context.uow_factory,
        tables,
        mlflow_settings.with_tracking(settings.artifact_locations),
        reader,
        tracking,
        RegistrationConfig(
            concurrency=mlflow_settings.registration_concurrency,
            lease_s=mlflow_settings.registration_lease_s,
            poll_s=mlflow_settings.registration_poll_s,
            attempts=mlflow_settings.registration_attempts,
        ),
    )
    cache = ReadCache()
    registry = HostedRegistry(
        tables, settings, artifacts, mlflow_settings, registration.wake, cache
    )
    local = [] if artifacts.local is None else [build_router(artifacts.local)]
    return ServiceParts(
        handlers=handlers.event_handlers(tables, settings.artifact_locations),
        routers=[api.router, artifacts_api.router, mlflow_api.router, *local],
        workers=[
            ServiceWorker("upload-sweep", lambda: sweep_expired_uploads(artifacts)),
            ServiceWorker("registration", registration.run),
        ],
        lifespan=_running(
            artifacts, tracking, cache.listen(context.database, tables.models.schema or "public")
        ),
        resources=registry,
        hot_routes=(
            [
                *hot_routes(registry, context.uow_factory, verifier),
                *hot_writes(registry, context.uow_factory, verifier),
            ]
            if (verifier := _verifier(context))
            else ()
        ),
    )


def _verifier(context: ServiceContext) -> IdentityVerifier | None:
    """What the hot routes check callers with: the gateway's identity, as every route."""
    return None if context.caller is None else context.caller.verifier


@asynccontextmanager
async def _running(
    artifacts: RegistryArtifacts,
    tracking: TrackingServer | None,
    cache_listener: NotificationListener,
) -> AsyncIterator[None]:
    """The artifact store open and the read cache listening while the registry runs; the
    tracking client closed after."""
    cache_listener.start()
    try:
        async with running(artifacts):
            yield
    finally:
        await cache_listener.aclose()
        if tracking is not None:
            await tracking.close()


def make_plugin(name: str = "registry", schema: str = SCHEMA) -> ServicePlugin:
    """The registry called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse.
    """
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        build=lambda context: build(context, tables),
    )


plugin = make_plugin()
