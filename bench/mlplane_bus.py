"""The bus benchmark's subject: outbox → relay → RabbitMQ → inbox-deduplicated handler.

A producer commits events through the unit of work (outbox rows in the same
transaction as its state), a relay publishes them with confirms, and a consumer
on the RabbitMQ transport records each in its inbox and applies an effect (one
row) in the same transaction. Latency runs from the producer's commit to the
consumer's commit.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from mlplane_contracts.envelope import CloudEvent, EventPayload, register_payload
from mlplane_runtime.bus.base import RetryPolicy
from mlplane_runtime.bus.rabbit import RabbitTransport, delete_service_queues
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import create_database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.relay import OutboxRelay
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from sqlalchemy import Column, Float, Integer, MetaData, Table, insert, text

from bench.figures import RunFigures

BENCH_TYPE = "io.mlplane.bench.ping.v1"


@register_payload
class BenchPing(EventPayload):
    event_type = BENCH_TYPE
    number: int
    committed_at: float


async def run_mlplane_bus(
    database_url: str,
    amqp_url: str,
    events: int,
    *,
    events_per_transaction: int = 10,
    producers: int = 4,
) -> RunFigures:
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
        latency = time.perf_counter() - event.data.committed_at
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
    consumer_transport = RabbitTransport(amqp_url, retry=RetryPolicy(max_attempts=3))
    consumer_transport.subscribe(consumer_service, consumer.event_types, consumer)
    relay_transport = RabbitTransport(amqp_url)
    relay = OutboxRelay(database, tables, relay_transport, producer_service)
    produce_uow = UnitOfWorkFactory(database, tables, producer_service)

    async def produce(first: int, stride: int) -> None:
        for start in range(first * events_per_transaction, events, stride * events_per_transaction):
            async with produce_uow() as uow:
                now = time.perf_counter()
                for number in range(start, min(events, start + events_per_transaction)):
                    uow.emit(BenchPing(number=number, committed_at=now), subject=f"p/{number % 64}")
                await uow.commit()

    try:
        await consumer_transport.start()
        await relay_transport.start()
        relay.start()
        started = time.perf_counter()
        await asyncio.gather(*(produce(i, producers) for i in range(producers)))
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        return RunFigures.from_samples(events, elapsed, latencies)
    finally:
        await relay.stop()
        await relay_transport.stop()
        await consumer_transport.stop()
        await delete_service_queues(amqp_url, consumer_service)
        async with database.engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await database.dispose()
