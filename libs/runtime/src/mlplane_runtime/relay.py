"""The outbox relay: publishes committed outbox rows to the bus, in order, at least once.

One pass claims a batch of rows, publishes it through the transport (which returns
only when the broker confirmed every message) and deletes the rows in the same
transaction. A failure anywhere rolls the transaction back, so the rows stay and are
published again later: nothing committed is lost, and a row is deleted only after
its confirm. (Deleting rather than marking keeps the table as small as the backlog;
what was sent is recorded by the bus and the consumers' inboxes.) A crash between
the confirm and the commit publishes a batch twice; consumers' inboxes absorb that.

Order: rows are claimed in `position` order with `FOR UPDATE SKIP LOCKED`, so
several relays share the work. A claimed row is published only when every earlier
row of its subject is in the same batch or gone; a row stuck behind another relay's
in-flight row waits for that relay's commit. So no subject is ever reordered,
however many relays run.

The relay sleeps on LISTEN/NOTIFY (the unit of work NOTIFYs at commit) on a
dedicated connection; while that connection is down it reconnects with backoff and
polls meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from sqlalchemy import BigInteger, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from mlplane_runtime.bus.base import OutboundMessage, Transport
from mlplane_runtime.db import Database
from mlplane_runtime.listen import NotificationListener
from mlplane_runtime.messaging_tables import MessagingTables
from mlplane_runtime.telemetry.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from mlplane_runtime.waiting import wait_set

logger = logging.getLogger(__name__)

# `locked`: the next rows nobody else holds. `first_gap`: per subject, the first
# row of that subject before our last locked row that is not ours (held by another
# relay: SKIP LOCKED passed it by); only our rows before it may go. Rows after our
# last locked row cannot hold any of ours back, so the check reads only the primary
# key range the locking scan just walked, whose entries of deleted rows that scan has
# marked dead; a probe per subject of the (subject, position) index would instead
# visit every deleted row of that subject until VACUUM removes it (thousands per
# pass after a few seconds at a few hundred events/s).
# The result is one row per claimed row, or a single row of NULLs when none was,
# each carrying `locked_count` (locked but not claimed = blocked by another relay).
# The claimed rows are deleted through primary-key lookups (= ANY), whatever the
# planner believes the table holds.
# The transaction commits asynchronously (set_config(..., true) = SET LOCAL): it only
# deletes rows RabbitMQ has confirmed, so if PostgreSQL crashes before flushing it,
# the rows come back and are published again, which the consumers' inboxes absorb
# like any relay crash between confirm and commit. Not waiting for the WAL flush
# takes a few milliseconds off every event's way to the bus.
_CLAIM_SQL = """
WITH locked AS MATERIALIZED (
    SELECT position, subject FROM {outbox}
    ORDER BY position
    LIMIT :batch_size
    FOR UPDATE SKIP LOCKED
),
gaps AS (
    SELECT e.subject, min(e.position) AS first_gap
      FROM {outbox} e
     WHERE e.position < (SELECT max(position) FROM locked)
       AND e.position NOT IN (SELECT position FROM locked)
       AND e.subject IS NOT NULL
     GROUP BY e.subject
),
ready AS (
    SELECT l.position FROM locked l LEFT JOIN gaps g ON g.subject = l.subject
     WHERE g.first_gap IS NULL OR l.position < g.first_gap
),
claimed AS (
    DELETE FROM {outbox} o WHERE o.position = ANY (ARRAY(SELECT position FROM ready))
    RETURNING o.position, o.event_id, o.type, o.headers, o.body, o.content_type
)
SELECT c.*, n.locked_count
  FROM (SELECT count(*) AS locked_count,
               set_config('synchronous_commit', 'off', true) AS async_commit
          FROM locked) n
  LEFT JOIN claimed c ON true
"""

_BACKLOG_SQL = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
  FROM {outbox}
"""


class OutboxRelay:
    """Moves one service's committed outbox rows to the bus; see the module docstring."""

    def __init__(
        self,
        database: Database,
        tables: MessagingTables,
        transport: Transport,
        service: str,
        *,
        batch_size: int = 500,
        idle_poll_s: float = 2.0,
        unlistened_poll_s: float = 1.0,
        contention_retry_s: float = 0.05,
        max_backoff_s: float = 10.0,
        metrics_interval_s: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._database = database
        self._tables = tables
        self._transport = transport
        self._service = service
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._unlistened_poll_s = unlistened_poll_s
        self._contention_retry_s = contention_retry_s
        self._max_backoff_s = max_backoff_s
        self._metrics_interval_s = metrics_interval_s
        outbox = f'"{tables.schema}".outbox'
        self._claim = text(_CLAIM_SQL.format(outbox=outbox)).columns(
            position=BigInteger,
            event_id=Text,
            type=Text,
            headers=JSONB,
            body=LargeBinary,
            content_type=Text,
            locked_count=BigInteger,
        )
        self._backlog = text(_BACKLOG_SQL.format(outbox=outbox))
        self._wake = asyncio.Event()
        self._listening = False
        self._blocked_passes = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._metrics_refreshed_at = float("-inf")

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (the relay wakes on commits)."""
        return self._listening

    async def publish_pending(self) -> int:
        """Publish what can be published now, batch after batch; returns how many.

        Stops at the first batch that is not full. Rows held by another relay, or
        waiting behind one of its rows, are left to later passes. Raises what the
        transport or the database raises; the failed batch stays in the outbox.
        """
        total = 0
        while True:
            published, locked = await self._publish_batch()
            total += published
            # Locked rows we could not publish wait for another relay's commit.
            self._blocked_passes = self._blocked_passes + 1 if published < locked else 0
            if locked < self._batch_size or published == 0:
                return total

    async def run(self) -> None:
        """Publish until cancelled or `stop()`ped, waking on NOTIFY or every idle poll.

        Never returns on errors: a failed pass (broker or database down) is logged
        and retried with exponential backoff.
        """
        self._stopping = False
        listener = asyncio.create_task(self._listen(), name=f"outbox-listen-{self._service}")
        failures = 0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self.publish_pending()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures += 1
                    delay = self._backoff(failures)
                    logger.warning(
                        "outbox relay of %s: publishing failed (try %d), retrying in %.1fs",
                        self._service,
                        failures,
                        delay,
                        exc_info=True,
                    )
                    # The backlog is what operators watch during an outage.
                    await self._refresh_metrics_if_due()
                    await self._sleep_unless_stopping(delay)
                    continue
                await self._refresh_metrics_if_due()
                await self._wait_for_work()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            self._listening = False

    def start(self) -> None:
        """Run the relay in a background task (no-op when already running)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._service}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let the current batch finish (up to `timeout_s`), then stop the relay."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _publish_batch(self) -> tuple[int, int]:
        """(published, locked) for one batch, in one transaction."""
        async with self._database.engine.connect() as conn, conn.begin():
            rows = (await conn.execute(self._claim, {"batch_size": self._batch_size})).all()
            locked = int(rows[0].locked_count) if rows else 0
            claimed = sorted((r for r in rows if r.position is not None), key=_position)
            if not claimed:
                return 0, locked
            await self._transport.publish(
                [
                    OutboundMessage(
                        routing_key=row.type,
                        body=row.body,
                        headers=row.headers,
                        message_id=row.event_id,
                        content_type=row.content_type,
                    )
                    for row in claimed
                ]
            )
        for event_type, count in Counter(row.type for row in claimed).items():
            EVENTS_PUBLISHED.labels(self._service, event_type).inc(count)
        return len(claimed), locked

    async def _refresh_metrics_if_due(self) -> None:
        now = time.monotonic()
        if now - self._metrics_refreshed_at < self._metrics_interval_s:
            return
        self._metrics_refreshed_at = now
        try:
            async with self._database.engine.connect() as conn:
                backlog, oldest_age = (await conn.execute(self._backlog)).one()
        except Exception:
            logger.warning("outbox relay of %s: backlog query failed", self._service, exc_info=True)
            return
        OUTBOX_BACKLOG.labels(self._service).set(backlog)
        OUTBOX_OLDEST_AGE.labels(self._service).set(float(oldest_age))

    async def _wait_for_work(self) -> None:
        timeout = self._idle_poll_s if self._listening else self._unlistened_poll_s
        if self._blocked_passes:
            # Soon, since that relay commits soon; later and later if it does not
            # (its broker may be down), so blocked relays do not hammer the database.
            retry = self._contention_retry_s * 2 ** min(self._blocked_passes - 1, 6)
            timeout = min(timeout, retry)
        await wait_set(self._wake, timeout)

    async def _sleep_unless_stopping(self, delay: float) -> None:
        self._wake.clear()
        deadline = time.monotonic() + delay
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            await wait_set(self._wake, left)
            self._wake.clear()

    def _backoff(self, failures: int) -> float:
        return float(min(self._max_backoff_s, 0.1 * 2 ** min(failures, 16)))

    async def _listen(self) -> None:
        """Keep a LISTEN connection up for as long as the relay runs."""
        await NotificationListener(
            self._database,
            [self._tables.notify_channel],
            lambda _channel, _payload: self._wake.set(),
            on_connection=self._on_listen_connection,
            name=f"outbox relay of {self._service}",
            max_backoff_s=self._max_backoff_s,
        ).run()

    def _on_listen_connection(self, up: bool) -> None:
        self._listening = up
        if up:
            # Commits made while nobody listened sent NOTIFYs into the void.
            self._wake.set()


def _position(row: Any) -> int:
    return int(row.position)
