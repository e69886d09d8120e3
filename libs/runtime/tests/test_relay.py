"""OutboxRelay against the real PostgreSQL: at least once, never reordered, wakes on NOTIFY.

The bus side is a recording transport (a fake of `Transport`); the outbox, the
locks and LISTEN/NOTIFY are real.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from uuid import uuid4

import pytest
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.messaging_tables import MessagingTables
from mlplane_runtime.relay import OutboxRelay
from mlplane_runtime.uow import UnitOfWorkFactory
from prometheus_client import REGISTRY
from sqlalchemy import text

from .bus_fixtures import eventually
from .outbox_fixtures import (
    RecordingTransport,
    alias_changed,
    create_messaging_tables,
    outbox_size,
)


@pytest.fixture
async def tables(database: Database, schema: str) -> MessagingTables:
    _, messaging = await create_messaging_tables(database, schema)
    return messaging


@pytest.fixture
def service() -> str:
    """A unique service name, so metric series of concurrent tests never mix."""
    return f"relaytest-{uuid4().hex[:8]}"


@pytest.fixture
def uow_factory(database: Database, tables: MessagingTables, service: str) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(database, tables, service)


@pytest.fixture
async def relays() -> AsyncIterator[list[OutboxRelay]]:
    """Relays a test starts; all stopped at the end whatever happened."""
    started: list[OutboxRelay] = []
    try:
        yield started
    finally:
        await asyncio.gather(*(relay.stop(timeout_s=5) for relay in started))


async def _emit(uow_factory: UnitOfWorkFactory, subjects: Sequence[str | None]) -> list[str]:
    """Commit one event per subject in one unit of work; returns their ids."""
    async with uow_factory() as uow:
        for n, subject in enumerate(subjects, start=1):
            uow.emit(alias_changed(n), subject=subject)
        return [e.id for e in await uow.commit()]


def _published(service: str, event_type: str = "io.mlplane.model.alias.changed.v1") -> float:
    value = REGISTRY.get_sample_value(
        "mlplane_events_published_total", {"service": service, "event_type": event_type}
    )
    return value or 0.0


class TestPublishPending:
    async def test_committed_event_is_published_exactly_once(
        self,
        database: Database,
        tables: MessagingTables,
        uow_factory: UnitOfWorkFactory,
        service: str,
    ) -> None:
        transport = RecordingTransport()
        relay = OutboxRelay(database, tables, transport, service)
        [event_id] = await _emit(uow_factory, ["models/risk/fraud"])
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
        assert transport.ids() == [event_id]
        assert await outbox_size(database, tables) == 0
        assert _published(service) == 1

    async def test_published_message_decodes_to_the_committed_event(
        self, database: Database, tables: MessagingTables, uow_factory: UnitOfWorkFactory
    ) -> None:
        transport = RecordingTransport()
        async with uow_factory() as uow:
            uow.emit(alias_changed(3), subject="models/risk/fraud")
            [committed] = await uow.commit()
        await OutboxRelay(database, tables, transport, "registry").publish_pending()
        [message] = transport.published
        assert message.routing_key == committed.type
        assert message.message_id == committed.id
        assert transport.events() == [committed]

    async def test_rolled_back_event_is_never_published(
        self, database: Database, tables: MessagingTables, uow_factory: UnitOfWorkFactory
    ) -> None:
        transport = RecordingTransport()
        async with uow_factory() as uow:
            uow.emit(alias_changed(1), subject="models/risk/fraud")
            await uow.rollback()
        assert await OutboxRelay(database, tables, transport, "registry").publish_pending() == 0
        assert transport.published == []

    async def test_batches_publish_everything_in_position_order(
        self, database: Database, tables: MessagingTables, uow_factory: UnitOfWorkFactory
    ) -> None:
        transport = RecordingTransport()
        ids = await _emit(uow_factory, [f"models/m{n % 4}" for n in range(23)])
        relay = OutboxRelay(database, tables, transport, "registry", batch_size=5)
        assert await relay.publish_pending() == 23
        assert transport.ids() == ids
        assert transport.publish_calls == 5


@dataclass
class GatedTransport(RecordingTransport):
    """Holds every publish until `gate` opens: a relay stuck waiting for confirms."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().publish(messages)


class TestSeveralRelays:
    async def test_row_behind_another_relays_in_flight_row_waits_for_it(
        self, database: Database, tables: MessagingTables, uow_factory: UnitOfWorkFactory
    ) -> None:
        [a1] = await _emit(uow_factory, ["models/a"])
        [a2, b1] = await _emit(uow_factory, ["models/a", "models/b"])
        slow = GatedTransport()
        fast = RecordingTransport()
        relay_a = OutboxRelay(database, tables, slow, "registry", batch_size=1)
        relay_b = OutboxRelay(database, tables, fast, "registry")
        in_flight = asyncio.create_task(relay_a.publish_pending())
        try:
            await asyncio.wait_for(slow.entered.wait(), timeout=10)  # a1 claimed, unconfirmed
            # a2 must not overtake a1; b1 has nothing before it.
            assert await asyncio.wait_for(relay_b.publish_pending(), timeout=10) == 1
            assert fast.ids() == [b1]
            assert relay_b._blocked_passes == 1  # it locked a2 and left it
        finally:
            # Relay A holds row locks until it commits: never leave it hanging.
            slow.gate.set()
        # Once a1 is confirmed and gone, a2 may go (relay A's next batch takes it).
        assert await asyncio.wait_for(in_flight, timeout=10) == 2
        assert slow.ids() == [a1, a2]
        assert await relay_b.publish_pending() == 0

    async def test_three_relays_keep_every_subjects_order(
        self,
        database: Database,
        tables: MessagingTables,
        uow_factory: UnitOfWorkFactory,
        relays: list[OutboxRelay],
    ) -> None:
        subjects = [f"models/m{n}" for n in range(20)]
        rng = random.Random(7)
        emitted: list[str] = []
        # Half is waiting when the relays start (they all claim at once), half
        # is committed while they run.
        for _ in range(20):
            emitted += await _emit(uow_factory, [rng.choice(subjects) for _ in range(50)])
        # Slow confirms keep each relay's batch in flight while the others claim.
        transport = RecordingTransport(confirm_delay_s=0.02)
        for _ in range(3):
            # idle_poll_s far beyond the wait: only NOTIFY and the relays' own
            # retries can finish the job in time.
            relay = OutboxRelay(
                database, tables, transport, "registry", batch_size=50, idle_poll_s=120
            )
            relay.start()
            relays.append(relay)
        for _ in range(20):
            emitted += await _emit(uow_factory, [rng.choice(subjects) for _ in range(50)])
        await eventually(
            lambda: len(transport.published) >= 2000, "2,000 events published", timeout_s=45
        )
        assert sorted(transport.ids()) == sorted(emitted)  # each exactly once
        sequences: dict[str, list[int]] = defaultdict(list)
        for event in transport.events():
            assert event.subject is not None
            assert event.sequence is not None
            sequences[event.subject].append(event.sequence)
        for subject, seen in sequences.items():
            assert seen == list(range(1, len(seen) + 1)), subject


class TestRun:
    async def test_relay_wakes_on_notify_long_before_its_idle_poll(
        self,
        database: Database,
        tables: MessagingTables,
        uow_factory: UnitOfWorkFactory,
        relays: list[OutboxRelay],
    ) -> None:
        transport = RecordingTransport()
        relay = OutboxRelay(database, tables, transport, "registry", idle_poll_s=30)
        relay.start()
        relays.append(relay)
        await eventually(lambda: relay.listening, "relay listening", timeout_s=10)
        first = await _emit(uow_factory, ["models/a"])
        await eventually(lambda: transport.ids() == first, "first event published", 10)
        second = await _emit(uow_factory, ["models/a"])
        await eventually(
            lambda: transport.ids() == first + second, "second event published", timeout_s=10
        )

    async def test_rows_stay_while_the_transport_fails_and_go_out_once_it_recovers(
        self,
        database: Database,
        tables: MessagingTables,
        uow_factory: UnitOfWorkFactory,
        relays: list[OutboxRelay],
        service: str,
    ) -> None:
        transport = RecordingTransport(failing=True)
        relay = OutboxRelay(
            database,
            tables,
            transport,
            service,
            idle_poll_s=30,
            max_backoff_s=0.2,
            metrics_interval_s=0.0,
        )
        ids = await _emit(uow_factory, [f"models/m{n % 3}" for n in range(10)])
        relay.start()
        relays.append(relay)
        await eventually(lambda: transport.publish_calls >= 3, "publish retried", timeout_s=15)
        assert await outbox_size(database, tables) == 10
        assert transport.published == []
        assert _published(service) == 0
        transport.failing = False
        await eventually(lambda: len(transport.published) >= 10, "published after recovery", 15)
        assert transport.ids() == ids
        assert await outbox_size(database, tables) == 0
        assert _published(service) == 10

        def backlog_is_zero() -> bool:
            return REGISTRY.get_sample_value("mlplane_outbox_backlog", {"service": service}) == 0

        await eventually(backlog_is_zero, "backlog gauge back to 0", timeout_s=15)

    async def test_backlog_gauges_show_unpublished_rows_during_an_outage(
        self,
        database: Database,
        tables: MessagingTables,
        uow_factory: UnitOfWorkFactory,
        relays: list[OutboxRelay],
        service: str,
    ) -> None:
        transport = RecordingTransport(failing=True)
        relay = OutboxRelay(
            database, tables, transport, service, max_backoff_s=0.2, metrics_interval_s=0.0
        )
        await _emit(uow_factory, ["models/a"] * 4)
        relays.append(relay)
        relay.start()

        def gauge(name: str) -> float | None:
            return REGISTRY.get_sample_value(name, {"service": service})

        await eventually(lambda: gauge("mlplane_outbox_backlog") == 4, "backlog gauge 4", 15)
        assert (gauge("mlplane_outbox_oldest_age_seconds") or 0) > 0
        transport.failing = False
        await eventually(lambda: gauge("mlplane_outbox_backlog") == 0, "backlog gauge 0", 15)
        assert gauge("mlplane_outbox_oldest_age_seconds") == 0
        assert len(transport.published) == 4

    async def test_relay_survives_losing_every_database_connection(
        self,
        database_url: str,
        schema: str,
        tables: MessagingTables,
        relays: list[OutboxRelay],
    ) -> None:
        app = f"relaytest-{uuid4().hex[:10]}"
        own = create_database(database_url, application_name=app)
        try:
            transport = RecordingTransport()
            relay = OutboxRelay(
                own, tables, transport, "registry", idle_poll_s=30, max_backoff_s=0.5
            )
            relay.start()
            relays.append(relay)
            factory = UnitOfWorkFactory(own, tables, "registry")
            first = await _emit(factory, ["models/a"])
            await eventually(lambda: relay.listening and transport.ids() == first, "warm")
            async with own.engine.connect() as conn:
                killed = await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :app AND pid <> pg_backend_pid()"
                    ),
                    {"app": app},
                )
                assert killed.scalar() >= 1  # at least the LISTEN connection
            await eventually(lambda: not relay.listening, "relay saw the LISTEN loss", 10)
            second: list[str] = []
            for _ in range(20):
                # The producer's own pooled connections were killed too; a real
                # producer retries the same way.
                try:
                    second = await _emit(factory, ["models/a"])
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            await eventually(lambda: transport.ids() == first + second, "published after loss", 20)
            await eventually(lambda: relay.listening, "LISTEN reconnected", timeout_s=20)
        finally:
            await own.dispose()


class TestLongSchemaName:
    async def test_schema_with_a_63_character_name_still_wakes_its_relay(
        self, database: Database, relays: list[OutboxRelay]
    ) -> None:
        # mlplane_outbox_<63 chars> is past PostgreSQL's identifier limit.
        schema = f"t_{uuid4().hex[:10]}_" + "x" * 50
        await database.ensure_schema(schema)
        try:
            _, tables = await create_messaging_tables(database, schema)
            transport = RecordingTransport()
            relay = OutboxRelay(database, tables, transport, "registry", idle_poll_s=30)
            relay.start()
            relays.append(relay)
            await eventually(lambda: relay.listening, "relay listening", timeout_s=10)
            first = await _emit(UnitOfWorkFactory(database, tables, "registry"), ["models/a"])
            await eventually(lambda: transport.ids() == first, "first published", 10)
            second = await _emit(UnitOfWorkFactory(database, tables, "registry"), ["models/a"])
            await eventually(lambda: transport.ids() == first + second, "woken by NOTIFY", 10)
        finally:
            for relay in relays:
                await relay.stop(timeout_s=5)
            await database.drop_schema(schema)
