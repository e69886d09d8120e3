"""UnitOfWork + outbox: events commit with the state change, or not at all."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest
from mlplane_contracts.amqp import decode
from mlplane_runtime.db import Database, libpq_url
from mlplane_runtime.messaging_tables import MessagingTables
from mlplane_runtime.uow import UnitOfWorkFactory
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select

from .otel_fixtures import fresh_span_exporter
from .outbox_fixtures import alias_changed, create_messaging_tables, outbox_size


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_span_exporter()


@pytest.fixture
async def service_tables(database: Database, schema: str) -> tuple[MessagingTables, Table]:
    """The messaging tables plus a `thing` table standing for a service's own state."""
    metadata = MetaData(schema=schema)
    thing = Table("thing", metadata, Column("id", Integer, primary_key=True), Column("name", Text))
    _, tables = await create_messaging_tables(database, schema)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return tables, thing


@pytest.fixture
def uow_factory(
    database: Database, service_tables: tuple[MessagingTables, Table]
) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(database, service_tables[0], "registry")


async def _outbox_rows(database: Database, tables: MessagingTables) -> list[dict[str, object]]:
    async with database.engine.connect() as conn:
        result = await conn.execute(select(tables.outbox).order_by(tables.outbox.c.position))
        return [dict(row._mapping) for row in result]


class TestCommit:
    async def test_committed_event_is_one_outbox_row_with_the_encoded_message(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            emitted = uow.emit(alias_changed(7), subject="models/risk/fraud")
            committed = await uow.commit()
        rows = await _outbox_rows(database, uow_factory.tables)
        assert len(rows) == 1
        row = rows[0]
        assert (row["event_id"], row["type"], row["subject"]) == (
            emitted.id,
            "io.mlplane.model.alias.changed.v1",
            "models/risk/fraud",
        )
        assert row["source"] == "/mlplane/registry"
        stored = decode(row["headers"], row["body"], row["content_type"])
        assert stored == committed[0]
        assert stored.data == emitted.data

    async def test_state_change_and_event_commit_together(
        self,
        database: Database,
        uow_factory: UnitOfWorkFactory,
        service_tables: tuple[MessagingTables, Table],
    ) -> None:
        thing = service_tables[1]
        async with uow_factory() as uow:
            await uow.session.execute(insert(thing).values(id=1, name="fraud"))
            uow.emit(alias_changed(1), subject="models/risk/fraud")
            await uow.commit()
        async with database.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(thing))).scalar() == 1
        assert await outbox_size(database, uow_factory.tables) == 1

    async def test_commit_without_events_writes_no_outbox_row(
        self,
        database: Database,
        uow_factory: UnitOfWorkFactory,
        service_tables: tuple[MessagingTables, Table],
    ) -> None:
        async with uow_factory() as uow:
            await uow.session.execute(insert(service_tables[1]).values(id=1, name="x"))
            assert await uow.commit() == ()
        assert await outbox_size(database, uow_factory.tables) == 0


class TestRollback:
    async def test_event_emitted_in_a_rolled_back_transaction_leaves_no_row(
        self,
        database: Database,
        uow_factory: UnitOfWorkFactory,
        service_tables: tuple[MessagingTables, Table],
    ) -> None:
        async def fail_after_emitting() -> None:
            async with uow_factory() as uow:
                await uow.session.execute(insert(service_tables[1]).values(id=1, name="x"))
                uow.emit(alias_changed(1), subject="models/risk/fraud")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_after_emitting()
        async with uow_factory() as uow:
            uow.emit(alias_changed(2), subject="models/risk/fraud")
            # Leaving without commit is a rollback too.
        async with database.engine.connect() as conn:
            count = select(func.count()).select_from(service_tables[1])
            assert (await conn.execute(count)).scalar() == 0
        assert await outbox_size(database, uow_factory.tables) == 0

    async def test_rolled_back_events_do_not_consume_sequence_numbers(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            uow.emit(alias_changed(1), subject="models/risk/fraud")
            await uow._write_outbox()  # reserved, then rolled back by leaving the block
        async with uow_factory() as uow:
            uow.emit(alias_changed(2), subject="models/risk/fraud")
            committed = await uow.commit()
        assert committed[0].sequence == 1

    async def test_explicit_rollback_forgets_emitted_events(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            uow.emit(alias_changed(1), subject="a")
            await uow.rollback()
            uow.emit(alias_changed(2), subject="b")
            committed = await uow.commit()
        assert [e.subject for e in committed] == ["b"]
        assert await outbox_size(database, uow_factory.tables) == 1


class TestSequence:
    async def test_sequence_counts_per_subject_across_transactions(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            uow.emit(alias_changed(1), subject="models/a")
            uow.emit(alias_changed(2), subject="models/b")
            uow.emit(alias_changed(3), subject="models/a")
            uow.emit(alias_changed(4), subject=None)
            first = await uow.commit()
        async with uow_factory() as uow:
            uow.emit(alias_changed(5), subject="models/a")
            second = await uow.commit()
        assert [(e.subject, e.sequence) for e in first + second] == [
            ("models/a", 1),
            ("models/b", 1),
            ("models/a", 2),
            (None, None),
            ("models/a", 3),
        ]

    async def test_concurrent_producers_of_one_subject_get_positions_in_sequence_order(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        async def produce(n: int) -> None:
            async with uow_factory() as uow:
                uow.emit(alias_changed(n), subject="models/hot")
                await uow.commit()

        await asyncio.wait_for(asyncio.gather(*(produce(n) for n in range(1, 41))), timeout=30)
        rows = await _outbox_rows(database, uow_factory.tables)
        assert [row["sequence"] for row in rows] == list(range(1, 41))

    async def test_large_unit_of_work_is_written_in_emit_order(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            for n in range(1, 2501):
                uow.emit(alias_changed(n), subject=f"models/m{n % 3}")
            committed = await uow.commit()
        rows = await _outbox_rows(database, uow_factory.tables)
        assert [row["event_id"] for row in rows] == [e.id for e in committed]


class TestTraceContext:
    async def test_emit_captures_the_active_trace_context(
        self, uow_factory: UnitOfWorkFactory, spans: InMemorySpanExporter
    ) -> None:
        tracer = trace.get_tracer("tests")
        with tracer.start_as_current_span("register model") as span:
            async with uow_factory() as uow:
                event = uow.emit(alias_changed(1), subject="models/a")
        trace_id = f"{span.get_span_context().trace_id:032x}"
        assert event.traceparent is not None
        assert event.traceparent.split("-")[1] == trace_id

    async def test_emit_outside_a_span_has_no_trace_context(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        async with uow_factory() as uow:
            event = uow.emit(alias_changed(1), subject="models/a")
        assert event.traceparent is None


class TestNotify:
    async def test_commit_notifies_the_schema_channel_and_rollback_does_not(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        received: asyncio.Queue[str] = asyncio.Queue()
        conn = await asyncpg.connect(libpq_url(database.url))
        try:
            await conn.add_listener(
                uow_factory.tables.notify_channel, lambda *args: received.put_nowait(args[3])
            )
            async with uow_factory() as uow:
                uow.emit(alias_changed(1), subject=f"models/{uuid4().hex[:6]}")
                await uow._write_outbox()  # written, never committed
            async with uow_factory() as uow:
                uow.emit(alias_changed(2), subject="models/b")
                await uow.commit()
            # A marker sent after both: notifications arrive in commit order, so
            # everything before it is what the two units of work sent.
            await conn.execute("SELECT pg_notify($1, 'marker')", uow_factory.tables.notify_channel)
            payloads = []
            while not payloads or payloads[-1] != "marker":
                payloads.append(await asyncio.wait_for(received.get(), timeout=10))
            assert payloads == ["", "marker"]
        finally:
            await conn.close()


class TestReadingUnitOfWork:
    async def test_reads_run_outside_a_transaction(self, uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.reading() as uow:
            first = (await uow.session.execute(select(func.txid_current()))).scalar_one()
            second = (await uow.session.execute(select(func.txid_current()))).scalar_one()
        # Each statement autocommits, so each gets its own transaction id.
        assert first != second
        async with uow_factory() as uow:
            first = (await uow.session.execute(select(func.txid_current()))).scalar_one()
            second = (await uow.session.execute(select(func.txid_current()))).scalar_one()
        assert first == second

    async def test_emitting_is_refused(self, uow_factory: UnitOfWorkFactory) -> None:
        async with uow_factory.reading() as uow:
            with pytest.raises(RuntimeError, match="read-only"):
                uow.emit(alias_changed(1), subject="risk/fraud")


class TestAfterCommit:
    async def test_callbacks_run_once_after_the_commit_in_order(
        self, database: Database, uow_factory: UnitOfWorkFactory
    ) -> None:
        seen: list[tuple[str, int]] = []

        async def rows_visible() -> int:
            return len(await _outbox_rows(database, uow_factory.tables))

        async with uow_factory() as uow:
            uow.emit(alias_changed(1), subject=f"models/risk/{uuid4().hex[:8]}")
            uow.after_commit(lambda: seen.append(("first", len(seen))))
            uow.after_commit(lambda: seen.append(("second", len(seen))))
            assert seen == []
            await uow.commit()
            assert seen == [("first", 0), ("second", 1)]
            assert await rows_visible() == 1  # committed before the callbacks ran
            await uow.commit()  # a later commit does not call them again
        assert seen == [("first", 0), ("second", 1)]

    async def test_callbacks_never_run_after_a_rollback(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        called: list[str] = []
        async with uow_factory() as uow:
            uow.after_commit(lambda: called.append("rolled back"))
            await uow.rollback()
            await uow.commit()
        with pytest.raises(RuntimeError):  # noqa: PT012 (the block is the unit of work)
            async with uow_factory() as uow:
                uow.after_commit(lambda: called.append("raised"))
                raise RuntimeError("handler failed")
        async with uow_factory() as uow:
            uow.after_commit(lambda: called.append("left without commit"))
        assert called == []

    async def test_a_failing_callback_is_logged_and_breaks_nothing(
        self,
        database: Database,
        uow_factory: UnitOfWorkFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        called: list[str] = []

        def broken() -> None:
            raise ValueError("callback bug")

        async with uow_factory() as uow:
            uow.emit(alias_changed(2), subject=f"models/risk/{uuid4().hex[:8]}")
            uow.after_commit(broken)
            uow.after_commit(lambda: called.append("next"))
            committed = await uow.commit()
        assert len(committed) == 1
        assert called == ["next"]
        assert len(await _outbox_rows(database, uow_factory.tables)) == 1
        assert "after-commit callback of registry failed" in caplog.text
