"""The registry as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too)."""

from __future__ import annotations

from pathlib import Path

from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings

from mlplane_registry import api, artifacts_api, handlers
from mlplane_registry.artifacts.local_http import build_router
from mlplane_registry.artifacts.wiring import RegistryArtifacts, running, sweep_expired_uploads
from mlplane_registry.deps import HostedRegistry
from mlplane_registry.mlflow import api as mlflow_api
from mlplane_registry.mlflow.settings import MlflowApiSettings
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
    artifacts = RegistryArtifacts(settings, context)
    registry = HostedRegistry(
        tables, settings, artifacts, mlflow_settings or load_settings(MlflowApiSettings)
    )
    local = [] if artifacts.local is None else [build_router(artifacts.local)]
    return ServiceParts(
        handlers=handlers.event_handlers(tables, settings.artifact_locations),
        routers=[api.router, artifacts_api.router, mlflow_api.router, *local],
        workers=[ServiceWorker("upload-sweep", lambda: sweep_expired_uploads(artifacts))],
        lifespan=running(artifacts),
        resources=registry,
    )


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
