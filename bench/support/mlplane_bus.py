"""The bus benchmark's subject: outbox → relay → RabbitMQ → inbox-deduplicated handler.

A producing service (its own process, bench/support/producer_process.py) commits events
through the unit of work (outbox rows in the same transaction as its state) and
its relay publishes them with confirms; here a consuming service on the RabbitMQ
transport records each in its inbox and applies an effect (one row) in the same
transaction. Latency runs from the producer's commit to the consumer's handler.
"""

from __future__ import annotations

import asyncio
import time
import uuid

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


async def run_mlplane_bus(database_url: str, amqp_url: str, events: int) -> RunFigures:
    """Move `events` through the whole mlplane path; throughput and latency."""
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

    latencies: list[float] = []
    done = asyncio.Event()
    record_effect = insert(effects)  # built once; each handler call only binds values

    async def apply_effect(event: CloudEvent, uow: UnitOfWork) -> None:
        assert isinstance(event.data, BenchPing)
        latency = time.time() - event.data.committed_at
        await uow.session.execute(
            record_effect, {"number": event.data.number, "latency_s": latency}
        )
        latencies.append(latency)
        if len(latencies) >= events:
            done.set()

    consumer = EventConsumer(
        consumer_service,
        UnitOfWorkFactory(database, tables, consumer_service),
        {BENCH_TYPE: apply_effect},
    )
    transport = RabbitTransport(amqp_url, retry=RetryPolicy(max_attempts=3))
    transport.subscribe(consumer_service, consumer.event_types, consumer)
    try:
        await transport.start()
        async with ProducerProcess(
            "mlplane", amqp_url, database_url, schema, producer_service, str(events)
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
