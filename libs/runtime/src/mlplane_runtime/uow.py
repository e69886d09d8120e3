"""The unit of work: a service's state change and the events it causes, in one transaction.

A request or a message opens one `UnitOfWork`, does its work through `.session`,
calls `emit(...)` for each event, and `commit()`s once. Committed events reach the
bus through the outbox relay; an event emitted in a transaction that rolls back
leaves no trace. Consumers also record the handled event in the inbox through it,
so effects, inbox row and follow-up events commit together.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent, EventPayload, new_event
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_runtime.db import Database
from mlplane_runtime.messaging_tables import MessagingTables, outbox_channel
from mlplane_runtime.telemetry.tracing import current_trace_context

_log = logging.getLogger("mlplane.runtime.uow")


def event_source(service: str) -> str:
    """The CloudEvent `source` of everything `service` emits."""
    return f"/mlplane/{service}"


class UnitOfWork:
    """One transaction of one service. Use as `async with factory() as uow:`.

    Leaving the block without `commit()` (or by an exception) rolls back the
    session and forgets the emitted events.
    """

    def __init__(
        self,
        session: AsyncSession,
        tables: MessagingTables,
        service: str,
        *,
        read_only: bool = False,
    ) -> None:
        self._session = session
        self._read_only = read_only
        self._tables = tables
        self._service = service
        self._source = event_source(service)
        self._pending: list[CloudEvent] = []
        self._after_commit: list[Callable[[], object]] = []
        self._statements = _statements(tables.schema)

    @property
    def session(self) -> AsyncSession:
        """The SQLAlchemy session of this transaction (for the service's store)."""
        return self._session

    @property
    def service(self) -> str:
        return self._service

    @property
    def pending_events(self) -> tuple[CloudEvent, ...]:
        """Events emitted since the last commit, in emit order (no sequence yet)."""
        return tuple(self._pending)

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing the session rolls back whatever was not committed.
        self._pending.clear()
        self._after_commit.clear()
        await self._session.close()

    def emit(self, data: EventPayload, *, subject: str | None) -> CloudEvent:
        """Queue an event for this transaction; it is written to the outbox at commit.

        The event takes the trace context active now (so consumers join this
        trace), source `/mlplane/<service>`, a new id and the current time. Its
        per-subject `sequence` is assigned at commit: the returned event has none;
        `commit()` returns the events as they are published.
        """
        if self._read_only:
            raise RuntimeError("a read-only unit of work cannot emit events")
        traceparent, tracestate = current_trace_context()
        event = new_event(
            data,
            source=self._source,
            subject=subject,
            traceparent=traceparent,
            tracestate=tracestate,
        )
        self._pending.append(event)
        return event

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Call `callback` once, after this transaction's next successful `commit()`.

        Never called when the transaction rolls back (`rollback()`, an exception, or
        leaving the block without committing). Callbacks run in registration order on
        the event loop, after the data is visible to other transactions (the time to
        wake a worker that will read it); one that raises is logged and the others
        still run: the commit has happened and is never undone by a callback.
        """
        self._after_commit.append(callback)

    async def record_handled(self, event: CloudEvent) -> bool:
        """Write the inbox row of `event`; False when `(source, id)` was handled before.

        A concurrent transaction handling the same event makes this wait for it:
        if that one commits this returns False, if it rolls back this returns True.
        """
        result = await self._session.execute(
            self._statements.record_handled,
            {"source": event.source, "event_id": event.id, "type": event.type},
        )
        return result.first() is not None

    async def record_handled_many(self, events: Sequence[CloudEvent]) -> set[tuple[str, str]]:
        """Write the inbox rows of `events` in one statement; the `(source, id)` now new.

        Keys missing from the result were handled before (or by a concurrent
        transaction that committed first). `events` must not repeat a key.
        """
        if not events:
            return set()
        result = await self._session.execute(
            self._statements.record_handled_many,
            {
                "sources": [event.source for event in events],
                "event_ids": [event.id for event in events],
                "types": [event.type for event in events],
            },
        )
        return {(source, event_id) for source, event_id in result}

    async def commit(self) -> tuple[CloudEvent, ...]:
        """Write the emitted events to the outbox and commit everything at once.

        Assigns each event with a subject the next sequence number of that
        subject, then NOTIFYs the relay (PostgreSQL delivers it only on commit).
        Returns the committed events, sequences included. Raises what the
        database raises; the transaction is then rolled back by leaving the block.
        """
        events = await self._write_outbox() if self._pending else ()
        await self._session.commit()
        self._pending.clear()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("an after-commit callback of %s failed", self._service)
        return events

    async def rollback(self) -> None:
        """Discard the session's changes, the emitted events and the after-commit
        callbacks; the unit stays usable."""
        self._pending.clear()
        self._after_commit.clear()
        await self._session.rollback()

    async def _write_outbox(self) -> tuple[CloudEvent, ...]:
        """Reserve the subjects' sequence numbers, insert the rows and NOTIFY the relay,
        in one statement (one round trip); returns the events with their sequences."""
        counts = Counter(e.subject for e in self._pending if e.subject is not None)
        # Sorted, so concurrent units lock subject rows in one order (no deadlock).
        # The row lock is held to commit: producers of one subject commit, and get
        # outbox positions, in sequence order.
        subjects = sorted(counts)
        columns: dict[str, list[Any]] = {name: [] for name in _OUTBOX_COLUMNS}
        columns["subjects_reserved"] = subjects
        columns["counts"] = [counts[subject] for subject in subjects]
        for event in self._pending:
            # Encoded without its sequence; the statement adds `cloudEvents_sequence`
            # to the headers once it is reserved (what encode() writes for it).
            message = encode(event)
            columns["event_ids"].append(event.id)
            columns["sources"].append(event.source)
            columns["types"].append(event.type)
            columns["subjects"].append(event.subject)
            columns["headers"].append(json.dumps(message.headers))
            columns["bodies"].append(message.body)
            columns["content_types"].append(message.content_type)
        result = await self._session.execute(self._statements.write_outbox, columns)
        next_sequence = {
            subject: last - counts[subject] + 1
            for subject, last in result
            if subject is not None  # the row of NULLs when no event has a subject
        }
        events: list[CloudEvent] = []
        for event in self._pending:
            if event.subject is not None:
                sequence = next_sequence[event.subject]
                next_sequence[event.subject] = sequence + 1
                event = event.model_copy(update={"sequence": sequence})
            events.append(event)
        return tuple(events)


_OUTBOX_COLUMNS = (
    "event_ids",
    "sources",
    "types",
    "subjects",
    "headers",
    "bodies",
    "content_types",
)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The unit of work's SQL for one schema, built once: a fixed text per statement
    (arrays instead of a VALUES list per row count) keeps the per-commit cost to
    binding parameters, whatever the number of events."""

    record_handled: TextClause
    record_handled_many: TextClause
    write_outbox: TextClause


@functools.cache
def _statements(schema: str) -> _Statements:
    prefix = f'"{schema}".'
    return _Statements(
        record_handled=text(
            f"INSERT INTO {prefix}inbox (source, event_id, type)"
            " VALUES (:source, :event_id, :type)"
            " ON CONFLICT (source, event_id) DO NOTHING RETURNING event_id"
        ),
        record_handled_many=text(
            f"INSERT INTO {prefix}inbox (source, event_id, type)"
            " SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:event_ids AS text[]),"
            " CAST(:types AS text[]))"
            " ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id"
        ),
        # One round trip for the whole outbox write: reserve each subject's next
        # sequence numbers (upsert, which row-locks the subjects to commit), insert
        # the rows with their sequences (also added to the headers), NOTIFY the
        # relay (delivered at commit). unnest ... WITH ORDINALITY numbers the events
        # in emit order: the n-th event of a subject gets the n-th reserved number
        # and rows are inserted, so get positions, in emit order. Returns each
        # subject's last reserved number, or one row of NULLs when there is none.
        write_outbox=text(
            f"WITH reserved AS ("
            f" INSERT INTO {prefix}outbox_sequence AS s (subject, last_sequence)"
            " SELECT * FROM unnest(CAST(:subjects_reserved AS text[]),"
            " CAST(:counts AS bigint[]))"
            " ON CONFLICT (subject) DO UPDATE"
            " SET last_sequence = s.last_sequence + excluded.last_sequence"
            " RETURNING subject, last_sequence),"
            " numbered AS ("
            " SELECT e.*, r.last_sequence"
            " - count(*) OVER (PARTITION BY e.subject)"
            " + row_number() OVER (PARTITION BY e.subject ORDER BY e.n) AS sequence"
            " FROM unnest(CAST(:event_ids AS text[]), CAST(:sources AS text[]),"
            " CAST(:types AS text[]), CAST(:subjects AS text[]),"
            " CAST(:headers AS text[]), CAST(:bodies AS bytea[]),"
            " CAST(:content_types AS text[])) WITH ORDINALITY"
            " AS e(event_id, source, type, subject, headers, body, content_type, n)"
            " LEFT JOIN reserved r ON r.subject = e.subject),"
            " written AS ("
            f" INSERT INTO {prefix}outbox"
            " (event_id, source, type, subject, sequence, headers, body, content_type)"
            " SELECT event_id, source, type, subject, sequence,"
            " CASE WHEN sequence IS NULL THEN CAST(headers AS jsonb)"
            " ELSE CAST(headers AS jsonb)"
            " || jsonb_build_object('cloudEvents_sequence', sequence) END,"
            " body, content_type"
            " FROM numbered ORDER BY n"
            " RETURNING 1)"
            " SELECT r.subject, r.last_sequence"
            f" FROM (SELECT pg_notify('{outbox_channel(schema)}', '')) AS notified"
            " LEFT JOIN reserved r ON true"
        ),
    )


@dataclass(frozen=True, slots=True)
class UnitOfWorkFactory:
    """Opens units of work of one service: `async with uow_factory() as uow: ...`."""

    database: Database
    tables: MessagingTables
    service: str

    def __call__(self) -> UnitOfWork:
        """A new unit of work on a new session (connects on first use)."""
        return UnitOfWork(self.database.sessions(), self.tables, self.service)

    def reading(self) -> UnitOfWork:
        """A unit of work for reads only: each statement autocommits, nothing may be emitted.

        Saves the transaction's BEGIN and ROLLBACK round trips on read requests.
        """
        return UnitOfWork(self.database.reader_session(), self.tables, self.service, read_only=True)
