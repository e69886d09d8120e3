"""Running the builder in tests: its worker and runner on a test's schema and settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from mlplane_builder import handlers
from mlplane_builder.domain import Build
from mlplane_builder.runner import BuildRunner
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import BuilderTables
from mlplane_builder.worker import BuildWorker
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.uow import UnitOfWorkFactory
from sqlalchemy import select

from ..conftest import consumer_of, deliverer


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real HTTP transport, counting requests by (method, path kind) on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await super().handle_async_request(request)

    def count(self, method: str, part: str) -> int:
        return sum(1 for m, path in self.requests if m == method and part in path)


def settings(**values: Any) -> BuilderSettings:
    """Builder settings for a test: quick retries, small chunks, nothing from the env."""
    defaults: dict[str, Any] = {
        "registry_retry_delay_s": 0.05,
        "retry_delay_s": 0.05,
        "upload_chunk_size": 1024 * 1024,
        "poll_interval_s": 0.2,
        "lease_s": 30,
    }
    defaults.update(values)
    return BuilderSettings(_env_file=None, **defaults)  # type: ignore[call-arg]


@asynccontextmanager
async def builder(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    config: BuilderSettings,
    data_dir: Path,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[tuple[BuildRunner, BuildWorker]]:
    """A runner and a worker (slots not started: tests call `run_once`)."""
    async with BuildRunner(
        config, data_dir=data_dir, platform_data_dir=data_dir, transport=transport
    ) as runner:
        yield runner, BuildWorker("builder", uow_factory, tables, config, runner)


@asynccontextmanager
async def running(worker: BuildWorker) -> AsyncIterator[BuildWorker]:
    """`worker` running as the host runs it (its `ServiceWorker`): a task on `run()`,
    cancelled on the way out (running builds then finish or are released)."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def deliver_to(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, *events: CloudEvent
) -> None:
    deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
    for event in events:
        await deliver(event)


async def run_until_finished(worker: BuildWorker, *, tries: int = 10) -> Build:
    """Run due builds until one finishes (retries included), bounded in tries."""
    for _ in range(tries):
        build = await worker.run_once()
        if build is not None and build.status.value in ("succeeded", "failed"):
            return build
        await asyncio.sleep(0.1)
    raise AssertionError(f"no build finished in {tries} tries")


async def outbox_events(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, *, with_starts: bool = False
) -> Sequence[Any]:
    """The events in the builder's outbox, in order; outcomes only unless `with_starts`
    (each try also announces itself with `image.build_started`)."""
    from mlplane_contracts import events as ev
    from mlplane_contracts.amqp import decode

    async with uow_factory() as uow:
        outbox = tables.messaging.outbox
        rows = await uow.session.execute(
            select(outbox.c.headers, outbox.c.body, outbox.c.content_type).order_by(
                outbox.c.position
            )
        )
        events = [decode(row.headers, row.body, row.content_type) for row in rows]
    return [e for e in events if with_starts or e.type != ev.IMAGE_BUILD_STARTED]
