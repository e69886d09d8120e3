"""A plug-in's `build(context)`: called once per hosting; its lifespan and workers run
while hosted and stop in order. Against the real PostgreSQL (throwaway schemas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import RuntimeSettings
from sqlalchemy import MetaData

from .fixtures.example_service.plugin import make_plugin


def unique(prefix: str) -> str:
    return f"{prefix}{uuid4().hex[:10]}"


async def test_build_is_called_once_and_workers_run_inside_the_lifespan(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    events: list[str] = []
    contexts: list[ServiceContext] = []
    worker_ran = asyncio.Event()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        events.append("lifespan entered")
        yield
        events.append("lifespan exited")

    async def tick() -> None:
        events.append("worker started")
        worker_ran.set()
        try:
            await asyncio.Event().wait()
        finally:
            events.append("worker stopped")

    def build(context: ServiceContext) -> ServiceParts:
        contexts.append(context)
        return ServiceParts(workers=[ServiceWorker("tick", tick)], lifespan=lifespan())

    schema = unique("t_")
    plugin = ServicePlugin(
        name=unique("wk"), schema=schema, metadata=MetaData(schema=schema), build=build
    )
    bus_schema = unique("t_")
    settings = RuntimeSettings(database_url=database_url, amqp_url=None, data_dir=tmp_path)
    platform = Platform(settings, [plugin], bus_schema=bus_schema)
    try:
        await platform.start()
        await asyncio.wait_for(worker_ran.wait(), timeout=10)
    finally:
        await platform.stop()
        await database.drop_schema(schema)
        await database.drop_schema(bus_schema)
    assert [context.name for context in contexts] == [plugin.name]
    assert events == ["lifespan entered", "worker started", "worker stopped", "lifespan exited"]


def test_the_example_plugin_is_built_by_the_host() -> None:
    plugin = make_plugin("example", "example")
    assert plugin.build is not None
    assert plugin.verifies_gateway_identity
