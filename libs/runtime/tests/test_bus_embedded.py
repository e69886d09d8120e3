"""EmbeddedTransport against the real PostgreSQL: the shared contract, then durability.

Each test keeps the transport's tables in its own schema (`schema` fixture), dropped
afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from mlplane_runtime.bus.base import RetryPolicy
from mlplane_runtime.bus.embedded import EmbeddedTransport
from mlplane_runtime.db import Database, create_database
from sqlalchemy.ext.asyncio import AsyncEngine

from .bus_fixtures import FAST_RETRY, Recorder, eventually, message, unique_routing_key
from .bus_fixtures import unique_service as new_service_name
from .transport_contract import TransportContract


class EmbeddedBus:
    """Builds EmbeddedTransports on one schema for one test; stops them after."""

    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self.engine = engine
        self.schema = schema
        self.transports: list[EmbeddedTransport] = []

    def transport(
        self,
        *,
        retry: RetryPolicy = FAST_RETRY,
        concurrency: int = 8,
        graceful_timeout_s: float = 10.0,
        engine: AsyncEngine | None = None,
    ) -> EmbeddedTransport:
        transport = EmbeddedTransport(
            engine or self.engine,
            retry=retry,
            schema=self.schema,
            concurrency=concurrency,
            graceful_timeout_s=graceful_timeout_s,
            lease_s=3.0,
            poll_interval_s=1.0,
        )
        self.transports.append(transport)
        return transport

    def service(self) -> str:
        return new_service_name()

    async def close(self) -> None:
        for transport in self.transports:
            with contextlib.suppress(Exception):
                await transport.stop()


@pytest.fixture
async def bus(database: Database, schema: str) -> AsyncIterator[EmbeddedBus]:
    harness = EmbeddedBus(database.engine, schema)
    try:
        yield harness
    finally:
        await harness.close()


class TestEmbeddedTransportContract(TransportContract):
    """The shared delivery semantics, on PostgreSQL."""


async def test_an_unhandled_message_survives_a_restart_of_the_process(
    bus: EmbeddedBus, database_url: str
) -> None:
    rk, service = unique_routing_key(), bus.service()
    declared = bus.transport()
    declared.subscribe(service, [rk], Recorder())
    await declared.start()
    await declared.stop()
    publisher = bus.transport()
    await publisher.start()
    sent = message(rk, b'{"kept":true}', traceparent="00-keep-01")
    await publisher.publish([sent])
    await publisher.stop()

    # A new engine stands for a new process: nothing is shared but the tables.
    restarted = create_database(database_url, pool_size=2, max_overflow=2)
    try:
        handler = Recorder()
        transport = bus.transport(engine=restarted.engine)
        transport.subscribe(service, [rk], handler)
        await transport.start()

        await eventually(lambda: len(handler.calls) == 1, "handled after the restart")
        (call,) = handler.calls
        assert call.message.message_id == sent.message_id
        assert call.message.body == b'{"kept":true}'
        assert call.message.headers["traceparent"] == "00-keep-01"
        await transport.stop()
    finally:
        await restarted.dispose()


_CRASHING_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from sqlalchemy.ext.asyncio import create_async_engine
    from mlplane_runtime.bus.embedded import EmbeddedTransport

    async def main(url, schema, service, rk):
        engine = create_async_engine(url)
        transport = EmbeddedTransport(engine, schema=schema, lease_s=1.0)

        async def hang(message):
            print("entered", message.message_id, flush=True)
            await asyncio.Event().wait()

        transport.subscribe(service, [rk], hang)
        await transport.start()
        print("started", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_delivery_held_by_a_killed_process_is_delivered_again(
    bus: EmbeddedBus, database_url: str
) -> None:
    rk, service = unique_routing_key(), bus.service()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_CONSUMER,
        database_url,
        bus.schema,
        service,
        rk,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        started = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert started.startswith(b"started"), started
        publisher = bus.transport()
        await publisher.start()
        sent = message(rk)
        await publisher.publish([sent])
        entered = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert entered.split() == [b"entered", sent.message_id.encode()]
    finally:
        # SIGKILL: no stop(), no release of its lease, as in a crash.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        await process.wait()

    handler = Recorder()
    survivor = bus.transport()
    survivor.subscribe(service, [rk], handler)
    await survivor.start()

    await eventually(lambda: len(handler.calls) == 1, "delivered again after the lease ran out")
    assert handler.ids() == [sent.message_id]


async def test_publishing_before_start_is_refused(bus: EmbeddedBus) -> None:
    transport = bus.transport()

    with pytest.raises(RuntimeError):
        await transport.publish([message(unique_routing_key())])


async def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(
    database: Database,
) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        EmbeddedTransport(database.engine, schema="bus; DROP TABLE x", retry=FAST_RETRY)
