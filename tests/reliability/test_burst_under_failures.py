"""5,000 events in flight while the broker drops every connection and the relay is killed.

Real PostgreSQL and RabbitMQ. The relay runs in its own process (SIGKILLed and
restarted mid-burst); the consumer runs here on the RabbitMQ transport with the
inbox. The promise under test: every committed event has its effect exactly once.

This test runs `rabbitmqctl close_all_connections`, which drops every client of the
broker; it is marked `disruptive` so the suite runs it alone, after the others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mlplane_contracts.envelope import CloudEvent, EventPayload, register_payload
from mlplane_runtime.bus.rabbit import RabbitTransport, delete_service_queues
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(420)]

EVENTS = 5_000
EVENTS_PER_TRANSACTION = 25
BURST_TYPE = "io.mlplane.test.burst.v1"
WORKER = Path(__file__).with_name("relay_worker.py")


@register_payload
class BurstHappened(EventPayload):
    event_type = BURST_TYPE
    number: int


def _amqp_url() -> str:
    return os.environ.get("MLPLANE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _database_url() -> str:
    return os.environ.get(
        "MLPLANE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )


class RelayProcess:
    """The producer's relay as a child process that can be killed without warning."""

    def __init__(self, schema: str, service: str) -> None:
        self._args = [str(WORKER), _database_url(), schema, _amqp_url(), service]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, *self._args, stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 60)
        assert line.strip() == b"relay-ready", line

    async def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self._process.wait(), 30)

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


@pytest.fixture
async def burst_schema() -> AsyncIterator[tuple[Database, str]]:
    database = create_database(_database_url())
    schema = f"t_{uuid.uuid4().hex[:10]}"
    async with database.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield database, schema
    async with database.engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await database.dispose()


async def _count(database: Database, table: Table) -> tuple[int, int]:
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                select(func.count(), func.count(func.distinct(table.c.number)))
            )
        ).one()
    return int(row[0]), int(row[1])


async def _wait_for_effects(
    database: Database, effects: Table, at_least: int, within_s: float
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        total, _ = await _count(database, effects)
        if total >= at_least or loop.time() > deadline:
            return total
        await asyncio.sleep(0.2)


def _close_all_broker_connections() -> None:
    subprocess.run(
        ["rabbitmqctl", "close_all_connections", "mlplane reliability test"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def test_burst_has_every_effect_exactly_once_through_broker_and_relay_failures(
    burst_schema: tuple[Database, str],
) -> None:
    database, schema = burst_schema
    suffix = uuid.uuid4().hex[:8]
    producer, consumer_service = f"burstprod{suffix}", f"burstcons{suffix}"

    metadata = MetaData(schema=schema)
    tables = messaging_tables(metadata)
    effects = Table(
        "burst_effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String, nullable=False),
        Column("number", Integer, nullable=False),
    )
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)

    async def record_effect(event: CloudEvent, uow: UnitOfWork) -> None:
        assert isinstance(event.data, BurstHappened)
        await uow.session.execute(
            insert(effects).values(event_id=event.id, number=event.data.number)
        )

    uow_factory = UnitOfWorkFactory(database, tables, producer)
    consumer = EventConsumer(
        consumer_service,
        UnitOfWorkFactory(database, tables, consumer_service),
        {BURST_TYPE: record_effect},
    )
    transport = RabbitTransport(_amqp_url(), connection_name=f"consumer-{suffix}")
    transport.subscribe(consumer_service, consumer.event_types, consumer)
    relay = RelayProcess(schema, producer)
    try:
        await transport.start()
        await relay.start()

        async def produce() -> None:
            for start in range(0, EVENTS, EVENTS_PER_TRANSACTION):
                async with uow_factory() as uow:
                    for number in range(start, start + EVENTS_PER_TRANSACTION):
                        uow.emit(BurstHappened(number=number), subject=f"bursts/{number % 50}")
                    await uow.commit()

        producing = asyncio.create_task(produce())

        await _wait_for_effects(database, effects, 800, within_s=120)
        await asyncio.to_thread(_close_all_broker_connections)

        await _wait_for_effects(database, effects, 2_000, within_s=120)
        await relay.kill()
        await asyncio.sleep(1.0)  # events keep being committed while no relay runs
        await relay.start()

        await _wait_for_effects(database, effects, 3_500, within_s=120)
        await asyncio.to_thread(_close_all_broker_connections)

        await asyncio.wait_for(producing, timeout=120)
        await _wait_for_effects(database, effects, EVENTS, within_s=180)
        # Redeliveries after the failures must not add a second effect: let them land.
        await asyncio.sleep(3.0)

        total, distinct = await _count(database, effects)
        assert (total, distinct) == (EVENTS, EVENTS)
        async with database.engine.connect() as connection:
            # The relay deletes rows once the broker confirmed them.
            unpublished = await connection.scalar(select(func.count()).select_from(tables.outbox))
        assert unpublished == 0
        assert await transport.dead_letters(consumer_service) == []
    finally:
        await relay.stop()
        await transport.stop()
        await delete_service_queues(_amqp_url(), consumer_service)
