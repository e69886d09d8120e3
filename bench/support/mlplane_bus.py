"""The bus benchmark's subject: outbox → relay → RabbitMQ → inbox-deduplicated handler.

A producing service (its own process, bench/support/producer_process.py) commits events
through the unit of work (outbox rows in the same transaction as its state) and
its relay publishes them with confirms; here a consuming service on the RabbitMQ
transport records each in its inbox and applies an effect (one row) in the same
transaction. Latency runs from just before the producer's commit to the commit of
the consumer's transaction holding the effect (when the effect exists).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.bus.base import RetryPolicy
from mlplane_runtime.bus.rabbit import RabbitTransport, delete_service_queues
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import create_database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from sqlalchemy import Column, Float, Integer, MetaData, Table, insert, text

from bench.support.bench_event import BENCH_TYPE, BenchPing
from bench.support.child import ProducerProcess
from bench.support.figures import RunFigures


class _StampedUnitOfWork(UnitOfWork):
    """The consumer's unit of work, noting when the bench effects it holds commit."""

    def __init__(self, factory: UnitOfWorkFactory, latencies: list[float]) -> None:
        super().__init__(factory.database.sessions(), factory.tables, factory.service)
        self.sent_at: list[float] = []
        self._latencies = latencies

    async def commit(self) -> tuple[CloudEvent, ...]:
        events = await super().commit()
        now = time.time()
        self._latencies.extend(now - sent_at for sent_at in self.sent_at)
        self.sent_at.clear()
        return events

    async def rollback(self) -> None:
        self.sent_at.clear()
        await super().rollback()


async def run_mlplane_bus(
    database_url: str, amqp_url: str, events: int, *, rate: float | None = None
) -> RunFigures:
    """Move `events` through the whole mlplane path; throughput and latency.

    Without `rate`, the producer commits as fast as it can; with one, it offers
    `rate` events/s, one per transaction.
    """
    database = create_database(database_url)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    suffix = uuid.uuid4().hex[:6]
    producer_service, consumer_service = f"benchprod{suffix}", f"benchcons{suffix}"
    metadata = MetaData(schema=schema)
    tables = messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("number", Integer, primary_key=True),
        Column("latency_s", Float, nullable=False),
    )
    async with database.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(metadata.create_all)

    done = asyncio.Event()
    record_effect = insert(effects)  # built once; each handler call only binds values

    async def apply_effect(event: CloudEvent, uow: UnitOfWork) -> None:
        assert isinstance(event.data, BenchPing)
        assert isinstance(uow, _StampedUnitOfWork)
        latency = time.time() - event.data.committed_at
        await uow.session.execute(
            record_effect, {"number": event.data.number, "latency_s": latency}
        )
        if event.data.number >= 0:  # not one of the producer's warm-up events
            uow.sent_at.append(event.data.committed_at)

    class _Latencies(list[float]):
        def extend(self, values: Iterable[float]) -> None:
            super().extend(values)
            if len(self) >= events:
                done.set()

    latencies = _Latencies()
    uow_factory = UnitOfWorkFactory(database, tables, consumer_service)
    consumer = EventConsumer(
        consumer_service,
        lambda: _StampedUnitOfWork(uow_factory, latencies),
        {BENCH_TYPE: apply_effect},
    )
    transport = RabbitTransport(amqp_url, retry=RetryPolicy(max_attempts=3))
    transport.subscribe(consumer_service, consumer.event_types, consumer)
    try:
        await transport.start()
        pace = [] if rate is None else [str(rate)]
        async with ProducerProcess(
            "mlplane", amqp_url, database_url, schema, producer_service, str(events), *pace
        ) as producer:
            started = producer.go()
            await asyncio.wait_for(done.wait(), timeout=600)
            elapsed = time.perf_counter() - started
        return RunFigures.from_samples(events, elapsed, latencies)
    finally:
        await transport.stop()
        await delete_service_queues(amqp_url, consumer_service)
        async with database.engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await database.dispose()
