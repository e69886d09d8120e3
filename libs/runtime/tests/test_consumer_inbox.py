"""EventConsumer + inbox against the real PostgreSQL: one effect per event, poison sorted out."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.events import ModelAliasChanged
from mlplane_runtime.bus.base import InboundMessage, OutboundMessage, PoisonMessage
from mlplane_runtime.consumer import EventConsumer, EventHandler
from mlplane_runtime.db import Database
from mlplane_runtime.errors import InvalidInput, Unavailable
from mlplane_runtime.messaging_tables import MessagingTables
from mlplane_runtime.relay import OutboxRelay
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy import Column, Integer, Table, Text, func, insert, select

from .otel_fixtures import fresh_span_exporter, spans_with_trace_id
from .outbox_fixtures import (
    RecordingTransport,
    alias_changed,
    create_messaging_tables,
    inbound,
    outbox_size,
)

ALIAS_CHANGED = ModelAliasChanged.event_type


class Service:
    """A tiny consuming service: its messaging tables and an `effect` table in one schema."""

    def __init__(self, database: Database, tables: MessagingTables, effect: Table) -> None:
        self.database = database
        self.tables = tables
        self.effect = effect
        self.name = f"inboxtest-{uuid4().hex[:8]}"
        self.uow = UnitOfWorkFactory(database, tables, self.name)

    def consumer(self, handler: EventHandler) -> EventConsumer:
        return EventConsumer(self.name, self.uow, {ALIAS_CHANGED: handler})

    async def record_effect(self, event: CloudEvent, uow: UnitOfWork) -> None:
        """The handler most tests use: one `effect` row per handling."""
        assert isinstance(event.data, ModelAliasChanged)
        await uow.session.execute(
            insert(self.effect).values(event_id=event.id, version=event.data.version)
        )

    async def effects(self) -> list[str]:
        async with self.database.engine.connect() as conn:
            return [r[0] for r in await conn.execute(select(self.effect.c.event_id))]

    async def inbox_size(self) -> int:
        async with self.database.engine.connect() as conn:
            count = select(func.count()).select_from(self.tables.inbox)
            return int((await conn.execute(count)).scalar())

    def consumed(self, outcome: str) -> float:
        labels = {"service": self.name, "event_type": ALIAS_CHANGED, "outcome": outcome}
        return REGISTRY.get_sample_value("mlplane_events_consumed_total", labels) or 0.0


@pytest.fixture
async def service(database: Database, schema: str) -> Service:
    metadata, tables = await create_messaging_tables(database, schema)
    # No unique key on purpose: a second effect of one event would show as a row.
    effect = Table(
        "effect",
        metadata,
        Column("n", Integer, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False),
        Column("version", Integer),
    )
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return Service(database, tables, effect)


async def _produce(service: Service, version: int = 1) -> OutboundMessage:
    """One event committed by a producer and published by a relay, as it reaches the bus."""
    transport = RecordingTransport()
    async with service.uow() as uow:
        uow.emit(alias_changed(version), subject="models/risk/fraud")
        await uow.commit()
    await OutboxRelay(service.database, service.tables, transport, "producer").publish_pending()
    [message] = transport.published
    return message


class TestExactlyOnceEffects:
    async def test_committed_event_is_consumed_with_one_effect(self, service: Service) -> None:
        message = await _produce(service)
        await service.consumer(service.record_effect)(inbound(message))
        assert await service.effects() == [message.message_id]
        assert service.consumed("handled") == 1

    async def test_redelivered_event_has_no_second_effect(self, service: Service) -> None:
        message = await _produce(service)
        consumer = service.consumer(service.record_effect)
        await consumer(inbound(message))
        await consumer(inbound(message, attempt=2))
        assert await service.effects() == [message.message_id]
        assert await service.inbox_size() == 1
        assert (service.consumed("handled"), service.consumed("duplicate")) == (1, 1)

    async def test_concurrent_duplicate_deliveries_have_one_effect(self, service: Service) -> None:
        message = await _produce(service)

        async def slow_effect(event: CloudEvent, uow: UnitOfWork) -> None:
            await service.record_effect(event, uow)
            await asyncio.sleep(0.05)  # widen the window for the other delivery

        consumer = service.consumer(slow_effect)
        await asyncio.wait_for(
            asyncio.gather(*(consumer(inbound(message)) for _ in range(4))), timeout=20
        )
        assert await service.effects() == [message.message_id]
        assert service.consumed("duplicate") == 3

    async def test_failed_handling_leaves_no_trace_and_a_retry_has_one_effect(
        self, service: Service
    ) -> None:
        message = await _produce(service)
        tries = 0

        async def flaky(event: CloudEvent, uow: UnitOfWork) -> None:
            nonlocal tries
            tries += 1
            await service.record_effect(event, uow)
            if tries <= 2:
                raise Unavailable("object storage did not answer")

        consumer = service.consumer(flaky)
        for attempt in (1, 2):
            with pytest.raises(Unavailable):
                await consumer(inbound(message, attempt=attempt))
        assert await service.effects() == []
        assert await service.inbox_size() == 0
        await consumer(inbound(message, attempt=3))
        await consumer(inbound(message, attempt=1))  # and a late duplicate
        assert await service.effects() == [message.message_id]

    async def test_events_emitted_by_a_handler_commit_with_its_effect(
        self, service: Service
    ) -> None:
        message = await _produce(service)

        async def effect_and_follow_up(event: CloudEvent, uow: UnitOfWork) -> None:
            await service.record_effect(event, uow)
            uow.emit(alias_changed(2), subject=event.subject)

        await service.consumer(effect_and_follow_up)(inbound(message))
        assert len(await service.effects()) == 1
        assert await outbox_size(service.database, service.tables) == 1

    async def test_handler_failure_drops_the_events_it_emitted(self, service: Service) -> None:
        message = await _produce(service)

        async def emit_then_fail(event: CloudEvent, uow: UnitOfWork) -> None:
            uow.emit(alias_changed(2), subject=event.subject)
            raise RuntimeError("handler bug")

        with pytest.raises(RuntimeError, match="handler bug"):
            await service.consumer(emit_then_fail)(inbound(message))
        assert await outbox_size(service.database, service.tables) == 0


class TestPoison:
    @pytest.mark.parametrize(
        ("body", "headers", "reason"),
        [
            (b"{not json", None, "not JSON"),
            (b"{}", {"cloudEvents_specversion": "1.0"}, "missing required attribute 'id'"),
        ],
    )
    async def test_undecodable_message_is_poison_with_the_reason(
        self, service: Service, body: bytes, headers: dict[str, str] | None, reason: str
    ) -> None:
        message = await _produce(service)
        broken = InboundMessage(
            body=body,
            headers=dict(message.headers) if headers is None else headers,
            content_type="application/json",
            message_id=message.message_id,
            routing_key=message.routing_key,
        )
        with pytest.raises(PoisonMessage, match=reason):
            await service.consumer(service.record_effect)(broken)
        assert await service.inbox_size() == 0

    async def test_event_type_without_handler_is_poison(self, service: Service) -> None:
        message = await _produce(service)
        consumer = EventConsumer(service.name, service.uow, {})
        with pytest.raises(PoisonMessage, match="no handler"):
            await consumer(inbound(message))

    async def test_non_retryable_error_is_poison_and_commits_nothing(
        self, service: Service
    ) -> None:
        message = await _produce(service)

        async def reject(event: CloudEvent, uow: UnitOfWork) -> None:
            await service.record_effect(event, uow)
            raise InvalidInput("model 'fraud' has no version 7")

        with pytest.raises(PoisonMessage, match="no version 7"):
            await service.consumer(reject)(inbound(message))
        assert await service.effects() == []
        assert await service.inbox_size() == 0

    async def test_validation_error_in_handler_is_poison(self, service: Service) -> None:
        message = await _produce(service)

        class Strict(BaseModel):
            replicas: int

        async def parse(event: CloudEvent, uow: UnitOfWork) -> None:
            Strict.model_validate({"replicas": "many"})

        with pytest.raises(PoisonMessage, match="replicas"):
            await service.consumer(parse)(inbound(message))


class TestTelemetry:
    async def test_consumer_span_continues_the_producers_trace(self, service: Service) -> None:
        spans: InMemorySpanExporter = fresh_span_exporter()
        with trace.get_tracer("tests").start_as_current_span("ci webhook") as producer_span:
            message = await _produce(service)
        await service.consumer(service.record_effect)(inbound(message))
        producer = producer_span.get_span_context()
        [consumer_span] = [
            s for s in spans_with_trace_id(spans, producer.trace_id) if s.kind is SpanKind.CONSUMER
        ]
        assert consumer_span.parent is not None
        assert consumer_span.parent.span_id == producer.span_id
        assert consumer_span.attributes is not None
        assert consumer_span.attributes["cloudevents.event_id"] == message.message_id

    async def test_handling_time_is_recorded(self, service: Service) -> None:
        message = await _produce(service)
        await service.consumer(service.record_effect)(inbound(message))
        count = REGISTRY.get_sample_value(
            "mlplane_handler_duration_seconds_count",
            {"service": service.name, "event_type": ALIAS_CHANGED},
        )
        assert count == 1

    def test_event_types_are_the_handled_types(self, service: Service) -> None:
        assert service.consumer(service.record_effect).event_types == (ALIAS_CHANGED,)


class TestBatchedHandling:
    async def test_deliveries_arriving_together_each_have_one_effect(
        self, service: Service
    ) -> None:
        messages = [await _produce(service, version) for version in range(1, 31)]
        consumer = service.consumer(service.record_effect)
        await asyncio.wait_for(
            asyncio.gather(*(consumer(inbound(m)) for m in messages + messages)), timeout=30
        )
        assert sorted(await service.effects()) == sorted(m.message_id for m in messages)
        assert (service.consumed("handled"), service.consumed("duplicate")) == (30, 30)

    async def test_one_failing_event_in_a_batch_does_not_fail_its_neighbours(
        self, service: Service
    ) -> None:
        messages = [await _produce(service, version) for version in range(1, 11)]

        async def fussy_effect(event: CloudEvent, uow: UnitOfWork) -> None:
            assert isinstance(event.data, ModelAliasChanged)
            await service.record_effect(event, uow)
            if event.data.version == 4:
                raise Unavailable("the downstream of version 4 is down")
            if event.data.version == 7:
                raise InvalidInput("version 7 can never be handled")

        consumer = service.consumer(fussy_effect)
        results = await asyncio.wait_for(
            asyncio.gather(*(consumer(inbound(m)) for m in messages), return_exceptions=True),
            timeout=30,
        )
        by_version = dict(zip(range(1, 11), results, strict=True))
        assert isinstance(by_version[4], Unavailable)
        assert isinstance(by_version[7], PoisonMessage)
        assert all(by_version[v] is None for v in by_version if v not in (4, 7))
        handled = {m.message_id for v, m in zip(range(1, 11), messages, strict=True)}
        handled -= {messages[3].message_id, messages[6].message_id}
        assert sorted(await service.effects()) == sorted(handled)
        assert await service.inbox_size() == 8
