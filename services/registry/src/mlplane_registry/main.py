"""The registry as a plug-in of the mlplane platform: `plugin` is its entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter
from mlplane_runtime.per_host import PerHost
from mlplane_runtime.service import ServiceContext, ServicePlugin

from mlplane_registry import api, artifacts_api, handlers, mlflow_api
from mlplane_registry.artifacts_api import RegistryArtifacts
from mlplane_registry.settings import load_settings
from mlplane_registry.store import SCHEMA, define_tables

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def make_plugin(name: str = "registry", schema: str = SCHEMA) -> ServicePlugin:
    """The registry called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_REGISTRY_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    # Settings and artifact store are built when a host starts the service, never at
    # import (discovery).
    artifacts_of = PerHost(lambda context: RegistryArtifacts(load_settings(), context))

    def routers(context: ServiceContext) -> Sequence[APIRouter]:
        artifacts = artifacts_of(context)
        settings = artifacts.settings
        caller = context.require_caller()
        return [
            *api.routers(tables, context.uow_factory, settings, caller),
            *artifacts_api.routers(tables, context.uow_factory, artifacts, caller),
            *mlflow_api.routers(tables, context.uow_factory, settings, caller=caller),
        ]

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        try:
            async with artifacts_api.running(artifacts_of(context)):
                yield
        finally:
            artifacts_of.forget(context)

    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        handlers=lambda context: handlers.event_handlers(
            tables, artifacts_of(context).settings.artifact_locations
        ),
        routers=routers,
        lifespan=lifespan,
    )


plugin = make_plugin()
