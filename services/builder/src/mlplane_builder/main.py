"""The builder as a plug-in of the mlplane platform: `plugin` is its entry point."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.per_host import PerHost
from mlplane_runtime.service import ServiceContext, ServicePlugin
from mlplane_runtime.settings import load_settings

from mlplane_builder import api, handlers
from mlplane_builder.runner import BuildRunner
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import SCHEMA, define_tables
from mlplane_builder.worker import BuildWorker

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

_log = logging.getLogger("mlplane.builder")


@dataclass
class _Hosted:
    """One hosted builder's settings, and its worker while the lifespan runs."""

    settings: BuilderSettings
    worker: BuildWorker | None = field(default=None)

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()


def make_plugin(name: str = "builder", schema: str = SCHEMA) -> ServicePlugin:
    """The builder called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_BUILDER_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    # Settings are read when a host builds the service, never at import (discovery).
    hosted_of: PerHost[_Hosted] = PerHost(lambda _: _Hosted(load_settings(BuilderSettings)))

    def handlers_of(context: ServiceContext) -> Mapping[str, EventHandler]:
        state = hosted_of(context)
        return handlers.event_handlers(tables, state.wake)

    def routers(context: ServiceContext) -> Sequence[APIRouter]:
        state = hosted_of(context)
        return api.routers(tables, context.uow_factory, state.wake, context.require_caller())

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        state = hosted_of(context)
        settings = state.settings
        try:
            async with BuildRunner(
                settings, data_dir=context.data_dir, platform_data_dir=context.settings.data_dir
            ) as runner:
                worker = BuildWorker(context.name, context.uow_factory, tables, settings, runner)
                async with worker:
                    state.worker = worker
                    _log.info(
                        "builder started: %s, %d concurrent builds",
                        f"pushing to {settings.registry_host()}"
                        if not settings.embedded
                        else f"writing OCI layouts under {runner.layouts_root}",
                        settings.max_concurrent_builds,
                    )
                    worker.wake()  # builds recorded while no worker ran
                    try:
                        yield
                    finally:
                        state.worker = None
        finally:
            hosted_of.forget(context)

    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        handlers=handlers_of,
        routers=routers,
        lifespan=lifespan,
    )


plugin = make_plugin()
