"""The builder as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings

from mlplane_builder import api, handlers
from mlplane_builder.deps import HostedBuilder
from mlplane_builder.runner import BuildRunner
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import SCHEMA, BuilderTables, define_tables
from mlplane_builder.worker import BuildWorker

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

_log = logging.getLogger("mlplane.builder")


def build(
    context: ServiceContext, tables: BuilderTables, settings: BuilderSettings | None = None
) -> ServiceParts:
    """One hosted builder on `tables`: settings from `MLPLANE_BUILDER_*` unless given.

    Connects to nothing (the lifespan opens the registry and artifact clients). Raises
    InvalidInput naming each bad variable.
    """
    settings = settings or load_settings(BuilderSettings)
    runner = BuildRunner(
        settings, data_dir=context.data_dir, platform_data_dir=context.settings.data_dir
    )
    worker = BuildWorker(context.name, context.uow_factory, tables, settings, runner)
    return ServiceParts(
        handlers=handlers.event_handlers(tables, worker.wake),
        routers=[api.router],
        workers=[ServiceWorker("build-worker", worker.run)],
        lifespan=_opened(runner),
        resources=HostedBuilder(tables, settings, worker),
    )


@asynccontextmanager
async def _opened(runner: BuildRunner) -> AsyncIterator[None]:
    """The runner's clients, open while the builder is hosted (its worker runs inside)."""
    async with runner:
        settings = runner.settings
        _log.info(
            "builder started: %s, %d concurrent builds",
            f"writing OCI layouts under {runner.layouts_root}"
            if settings.embedded
            else f"pushing to {settings.registry_host()}",
            settings.max_concurrent_builds,
        )
        yield


def make_plugin(name: str = "builder", schema: str = SCHEMA) -> ServicePlugin:
    """The builder called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_BUILDER_*` setting fails the host's start (`InvalidInput` naming it).
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
