"""The whole path on real PostgreSQL and RabbitMQ: unit of work → outbox → relay →
RabbitMQ → inbox → handler, with the failures the foundation promises to survive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import uuid4

import aio_pika
import pytest
from mlplane_contracts import amqp
from mlplane_contracts.envelope import CloudEvent, EventPayload, new_event, register_payload
from mlplane_contracts.topology import EXCHANGE
from mlplane_runtime.bus.base import OutboundMessage, RetryPolicy
from mlplane_runtime.bus.rabbit import RabbitTransport, delete_service_queues
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from mlplane_runtime.relay import OutboxRelay
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from opentelemetry import trace
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from .bus_fixtures import eventually
from .otel_fixtures import fresh_span_exporter

E2E_TYPE = "io.mlplane.test.e2e.v1"
RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.2, factor=3.0, max_delay_s=5.0)


@register_payload
class SomethingHappened(EventPayload):
    event_type = E2E_TYPE
    number: int


@dataclass
class Pipeline:
    """A producer (uow + relay) and a consumer (inbox + handler) wired over RabbitMQ."""

    database: Database
    tables: MessagingTables
    effects: Table
    producer: UnitOfWorkFactory
    consumer_service: str
    consumer_transport: RabbitTransport
    handled_at: list[float] = field(default_factory=list)
    failures_before_success: int = 0
    spans: list[tuple[int, str]] = field(default_factory=list)
    failures_of: dict[int, int] = field(default_factory=dict)
    """Per event number, how many more times its handler fails (after its effect)."""
    calls_of: Counter[int] = field(default_factory=Counter)

    async def effect_count(self) -> tuple[int, int]:
        async with self.database.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(func.count(), func.count(func.distinct(self.effects.c.number)))
                )
            ).one()
        return int(row[0]), int(row[1])


@pytest.fixture
async def pipeline(database: Database, schema: str, amqp_url: str) -> AsyncIterator[Pipeline]:
    metadata = MetaData(schema=schema)
    tables = messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("number", Integer, nullable=False),
        Column("event_id", String, nullable=False),
    )
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)

    suffix = uuid4().hex[:8]
    producer_service, consumer_service = f"e2eprod{suffix}", f"e2econs{suffix}"
    consumer_transport = RabbitTransport(amqp_url, retry=RETRY)
    relay_transport = RabbitTransport(amqp_url)
    built = Pipeline(
        database=database,
        tables=tables,
        effects=effects,
        producer=UnitOfWorkFactory(database, tables, producer_service),
        consumer_service=consumer_service,
        consumer_transport=consumer_transport,
    )

    async def apply(event: CloudEvent, uow: UnitOfWork) -> None:
        assert isinstance(event.data, SomethingHappened)
        built.handled_at.append(time.monotonic())
        span_context = trace.get_current_span().get_span_context()
        built.spans.append((span_context.trace_id, event.id))
        await uow.session.execute(
            insert(effects).values(number=event.data.number, event_id=event.id)
        )
        built.calls_of[event.data.number] += 1
        if built.failures_of.get(event.data.number, 0) > 0:
            built.failures_of[event.data.number] -= 1
            raise ConnectionError(f"downstream of {event.data.number} not ready yet")
        if len(built.handled_at) <= built.failures_before_success:
            # The effect above is rolled back with the failed transaction.
            raise ConnectionError("downstream not ready yet")

    consumer = EventConsumer(
        consumer_service,
        UnitOfWorkFactory(database, tables, consumer_service),
        {E2E_TYPE: apply},
    )
    consumer_transport.subscribe(consumer_service, consumer.event_types, consumer)
    relay = OutboxRelay(database, tables, relay_transport, producer_service)
    await consumer_transport.start()
    await relay_transport.start()
    relay.start()
    try:
        yield built
    finally:
        await relay.stop()
        await relay_transport.stop()
        await consumer_transport.stop()
        await delete_service_queues(amqp_url, consumer_service)


async def test_committed_event_has_one_effect_and_rolled_back_event_none(
    pipeline: Pipeline,
) -> None:
    async with pipeline.producer() as uow:
        uow.emit(SomethingHappened(number=1), subject="things/1")
        await uow.commit()
    async with pipeline.producer() as uow:
        uow.emit(SomethingHappened(number=2), subject="things/2")
        await uow.rollback()
    # A later committed event proves the rolled-back one had every chance to arrive.
    async with pipeline.producer() as uow:
        uow.emit(SomethingHappened(number=3), subject="things/3")
        await uow.commit()

    async def both_arrived() -> bool:
        return (await pipeline.effect_count())[0] >= 2

    await eventually(both_arrived, "the two committed events to take effect")
    async with pipeline.database.engine.connect() as connection:
        numbers = sorted((await connection.execute(select(pipeline.effects.c.number))).scalars())
    assert numbers == [1, 3]


async def test_every_event_delivered_twice_has_its_effect_once(
    pipeline: Pipeline, amqp_url: str
) -> None:
    events = [
        new_event(SomethingHappened(number=n), source="/tests/e2e", subject=f"things/{n}")
        for n in range(20)
    ]
    publisher = RabbitTransport(amqp_url)
    await publisher.start()
    try:
        encoded = [amqp.encode(event) for event in events]
        messages = [
            OutboundMessage(m.routing_key, m.body, m.headers, m.message_id, m.content_type)
            for m in encoded
        ]
        await publisher.publish(messages)
        await publisher.publish(messages)
    finally:
        await publisher.stop()

    async def all_handled() -> bool:
        return (await pipeline.effect_count())[0] >= 20

    await eventually(all_handled, "20 effects")

    def duplicates_seen() -> float:
        labels = {"service": pipeline.consumer_service, "event_type": E2E_TYPE}
        value = REGISTRY.get_sample_value(
            "mlplane_events_consumed_total", {**labels, "outcome": "duplicate"}
        )
        return value or 0.0

    await eventually(lambda: duplicates_seen() >= 20, "the 20 second copies to be skipped")
    assert await pipeline.effect_count() == (20, 20)


async def test_handler_failing_twice_is_retried_with_growing_delays_and_has_one_effect(
    pipeline: Pipeline,
) -> None:
    pipeline.failures_before_success = 2
    async with pipeline.producer() as uow:
        uow.emit(SomethingHappened(number=7), subject="things/7")
        await uow.commit()

    async def took_effect() -> bool:
        return (await pipeline.effect_count())[0] >= 1

    await eventually(took_effect, "the effect after two failures")
    assert len(pipeline.handled_at) == 3
    first_wait = pipeline.handled_at[1] - pipeline.handled_at[0]
    second_wait = pipeline.handled_at[2] - pipeline.handled_at[1]
    assert second_wait > first_wait
    assert await pipeline.effect_count() == (1, 1)
    assert await pipeline.consumer_transport.dead_letters(pipeline.consumer_service) == []


async def test_an_event_failing_inside_a_batch_is_retried_alone_and_every_effect_happens_once(
    pipeline: Pipeline,
) -> None:
    # Committed together, the 60 events reach the consumer together and share
    # transactions; number 17 fails in its batch and again alone, so only it goes
    # through the retry queue.
    pipeline.failures_of[17] = 2
    async with pipeline.producer() as uow:
        for number in range(60):
            uow.emit(SomethingHappened(number=number), subject=f"things/{number}")
        await uow.commit()

    async def all_took_effect() -> bool:
        return (await pipeline.effect_count())[1] == 60

    await eventually(all_took_effect, "every effect, the failing event's after its retry")
    await asyncio.sleep(0.5)  # a second effect would show up by now
    assert await pipeline.effect_count() == (60, 60)
    assert pipeline.calls_of[17] == 3  # in its batch, alone, and the transport's retry
    assert max(pipeline.calls_of.values()) == 3
    assert await pipeline.consumer_transport.dead_letters(pipeline.consumer_service) == []


async def test_malformed_messages_are_dead_lettered_with_a_reason_and_consumer_keeps_serving(
    pipeline: Pipeline, amqp_url: str
) -> None:
    good = new_event(SomethingHappened(number=1), source="/tests/e2e", subject="things/1")
    good_headers = dict(amqp.encode(good).headers)
    missing_id = {k: v for k, v in good_headers.items() if k != "cloudEvents_id"}
    malformed: dict[str, tuple[dict[str, object], bytes]] = {
        "not-json": ({**good_headers, "cloudEvents_id": "bad-1"}, b"{not json"),
        "missing-id": (missing_id, json.dumps({"number": 2}).encode()),
        "unknown-type": (
            {**good_headers, "cloudEvents_id": "bad-3", "cloudEvents_type": "io.nobody.v1"},
            json.dumps({"number": 3}).encode(),
        ),
        "invalid-payload": (
            {**good_headers, "cloudEvents_id": "bad-4"},
            json.dumps({"number": "four"}).encode(),
        ),
    }
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        for name, (headers, body) in malformed.items():
            await exchange.publish(
                aio_pika.Message(
                    body,
                    headers=headers,  # type: ignore[arg-type]
                    message_id=name,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=E2E_TYPE,
            )
    finally:
        await connection.close()
    async with pipeline.producer() as uow:
        uow.emit(SomethingHappened(number=99), subject="things/99")
        await uow.commit()

    async def good_event_handled() -> bool:
        return (await pipeline.effect_count())[0] >= 1

    await eventually(good_event_handled, "the valid event after the malformed ones")

    async def all_dead_lettered() -> bool:
        letters = await pipeline.consumer_transport.dead_letters(pipeline.consumer_service)
        return len(letters) >= len(malformed)

    await eventually(all_dead_lettered, "four dead letters")
    letters = {
        letter.message_id: letter
        for letter in await pipeline.consumer_transport.dead_letters(pipeline.consumer_service)
    }
    assert set(letters) == set(malformed)
    assert "JSON" in letters["not-json"].reason
    assert "'id'" in letters["missing-id"].reason
    assert "io.nobody.v1" in letters["unknown-type"].reason
    assert "number" in letters["invalid-payload"].reason
    assert all(letter.attempts == 1 for letter in letters.values())


async def test_consumer_span_continues_the_producer_trace(pipeline: Pipeline) -> None:
    exporter = fresh_span_exporter()
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("ci webhook") as producer_span:
        async with pipeline.producer() as uow:
            event = uow.emit(SomethingHappened(number=5), subject="things/5")
            await uow.commit()
    producer_trace_id = producer_span.get_span_context().trace_id

    await eventually(lambda: len(pipeline.spans) >= 1, "the event to be handled")
    assert pipeline.spans[0] == (producer_trace_id, event.id)

    def consumer_span_finished() -> bool:
        return any(
            span.kind == trace.SpanKind.CONSUMER
            and span.context is not None
            and span.context.trace_id == producer_trace_id
            for span in exporter.get_finished_spans()
        )

    await eventually(consumer_span_finished, "a finished consumer span in the producer's trace")
