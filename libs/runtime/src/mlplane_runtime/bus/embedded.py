"""The embedded platform's transport: the bus on PostgreSQL, with RabbitMQ's semantics.

`make run` hosts every service in one process without RabbitMQ, and its data must
survive a restart, so messages live in tables (see `embedded_store`) of the
embedded PostgreSQL. The semantics are `RabbitTransport`'s:
- publish fans a message out to every service queue bound to its type, in one
  transaction: "confirmed" once committed. Bindings are persisted on start, so a
  message for a service not running now waits for it;
- each subscribed service has a consumer loop that leases due rows oldest first
  (`FOR UPDATE SKIP LOCKED`, so several processes can share a queue) and handles
  up to `concurrency` at once. It wakes on LISTEN/NOTIFY, on the next retry's due
  time, or every `poll_interval_s` at the latest;
- the row is deleted (acked) only after the handler returned. A lease held by a
  process that died expires after `lease_s` and the row is delivered again; the
  running process renews its leases while handlers run;
- a failure pushes `available_at` by the `RetryPolicy` backoff; after the last try,
  or at once for `PoisonMessage`, the row becomes a dead letter with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from mlplane_contracts.topology import queue_name
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mlplane_runtime.bus.base import (
    DeadLetter,
    DeliveryHandler,
    InboundMessage,
    OutboundMessage,
    PoisonMessage,
    RetryPolicy,
)
from mlplane_runtime.bus.embedded_store import DeliveryStore, StoredDelivery
from mlplane_runtime.db import libpq_url
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.telemetry.metrics import (
    DEAD_LETTER_DEPTH,
    EVENTS_DEAD_LETTERED,
    EVENTS_REPLAYED,
    EVENTS_RETRIED,
)
from mlplane_runtime.waiting import wait_set

__all__ = ["EmbeddedTransport"]

log = logging.getLogger(__name__)

# After a database error the consumer loop waits this long before trying again.
_ERROR_PAUSE_S = 1.0


class _Consumer:
    """One service's loop state: its handler, wake-up event and running deliveries."""

    def __init__(self, service: str, event_types: list[str], handler: DeliveryHandler) -> None:
        self.service = service
        self.event_types = event_types
        self.handler = handler
        self.wake = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.loop: asyncio.Task[None] | None = None


class EmbeddedTransport:
    """The `Transport` on PostgreSQL tables in `schema`, for the one-process platform.

    `concurrency` bounds the deliveries handled at once per service. Durable:
    whatever was published and not yet handled is there after a restart.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry: RetryPolicy = RetryPolicy(),
        schema: str = "bus",
        concurrency: int = 8,
        lease_s: float = 30.0,
        poll_interval_s: float = 5.0,
        graceful_timeout_s: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._engine = engine
        self._retry = retry
        self._store = DeliveryStore(schema)
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self._graceful_timeout_s = graceful_timeout_s
        # Leases carry this transport's id: a new process gets a new id, so the
        # rows a dead one leased come back once their lease expires.
        self._owner = str(uuid.uuid4())
        self._consumers: dict[str, _Consumer] = {}
        self._listener: asyncpg.Connection | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        """Consume `event_types` on the service's queue with `handler`; call before `start`.

        Raises ValueError for an invalid service name (the names RabbitMQ queues
        take), a service subscribed twice or no event types; RuntimeError once started.
        """
        queue_name(service)  # validates the name
        if self._started:
            raise RuntimeError("subscribe before start")
        if service in self._consumers:
            raise ValueError(f"service {service!r} is already subscribed")
        if not event_types:
            raise ValueError("subscribe to at least one event type")
        self._consumers[service] = _Consumer(service, list(dict.fromkeys(event_types)), handler)

    async def start(self) -> None:
        """Create the tables if needed, persist bindings, listen, start consumer loops.

        Idempotent. Raises SQLAlchemy / asyncpg errors when the database cannot be
        reached.
        """
        if self._started:
            return
        async with self._engine.begin() as conn:
            await self._store.create_tables(conn)
            for consumer in self._consumers.values():
                await self._store.bind(conn, consumer.service, consumer.event_types)
        if self._consumers:
            await self._listen()
        self._stopping = False
        self._started = True
        for consumer in self._consumers.values():
            consumer.loop = asyncio.create_task(
                self._consume(consumer), name=f"bus-consumer-{consumer.service}"
            )
        if self._consumers:
            self._renewer = asyncio.create_task(self._keep_leases(), name="bus-lease-renewer")

    async def stop(self) -> None:
        """Stop leasing, let running handlers finish (up to the graceful timeout), disconnect.

        Handlers still running after the timeout are cancelled and their rows
        released, so they are delivered again.
        """
        if not self._started:
            return
        self._stopping = True
        for consumer in self._consumers.values():
            consumer.wake.set()
        loops = [c.loop for c in self._consumers.values() if c.loop is not None]
        await asyncio.gather(*loops, return_exceptions=True)
        in_flight = [t for c in self._consumers.values() for t in c.in_flight]
        if in_flight:
            _, pending = await asyncio.wait(in_flight, timeout=self._graceful_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        try:
            async with self._engine.begin() as conn:
                await self._store.release(conn, self._owner)
        except (SQLAlchemyError, OSError):
            log.exception("could not release leases; they expire in %s s", self._lease_s)
        await self._unlisten()
        self._started = False

    async def ping(self) -> bool:
        """True when started and the database answers."""
        if not self._started:
            return False
        try:
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except (SQLAlchemyError, OSError):
            return False
        return True

    # -- publishing --------------------------------------------------------

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Queue each message for every service bound to its type, in one transaction.

        Returns once committed (in order: ids follow the batch). A type nobody is
        bound to is dropped without error. Headers must be JSON-able (they are
        stored as jsonb). Raises `Unavailable` when the database does not commit,
        RuntimeError before `start`.
        """
        if not self._started:
            raise RuntimeError("the transport is not started")
        if not messages:
            return
        rows = [
            {
                "routing_key": m.routing_key,
                "headers": m.headers,
                "body": m.body,
                "content_type": m.content_type,
                "message_id": m.message_id,
            }
            for m in messages
        ]
        try:
            async with self._engine.begin() as conn:
                await self._store.enqueue(conn, rows)
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable(f"the bus tables did not take {len(rows)} messages") from exc

    # -- consuming ---------------------------------------------------------

    async def _listen(self) -> None:
        # LISTEN needs a connection of its own for the transport's lifetime, outside
        # the engine's pool (a pooled connection would be handed to others).
        url = libpq_url(self._engine.url.render_as_string(hide_password=False))
        listener = await asyncpg.connect(url)
        await listener.add_listener(self._store.channel, self._on_notification)
        self._listener = listener

    async def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        consumer = self._consumers.get(payload)
        if consumer is not None:
            consumer.wake.set()

    async def _keep_leases(self) -> None:
        """Renew this process's leases while handlers run; re-listen if LISTEN was lost."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                async with self._engine.begin() as conn:
                    await self._store.renew(conn, self._owner, self._lease_s)
                if self._listener is None or self._listener.is_closed():
                    await self._unlisten()
                    await self._listen()
            except Exception:
                log.exception("lease renewal failed; will try again")

    async def _consume(self, consumer: _Consumer) -> None:
        while not self._stopping:
            free = self._concurrency - len(consumer.in_flight)
            timeout = self._poll_interval_s
            if free > 0:
                # Cleared before looking, so a NOTIFY that lands meanwhile is kept.
                consumer.wake.clear()
                try:
                    async with self._engine.begin() as conn:
                        leased = await self._store.lease(
                            conn, consumer.service, self._owner, free, self._lease_s
                        )
                        if len(leased) < free:
                            due = await self._store.seconds_until_due(conn, consumer.service)
                            if due is not None:
                                timeout = min(timeout, due)
                except Exception:
                    log.exception("leasing from %s failed; will try again", consumer.service)
                    leased, timeout = [], _ERROR_PAUSE_S
                for delivery in leased:
                    task = asyncio.create_task(self._deliver(consumer, delivery))
                    consumer.in_flight.add(task)
                    task.add_done_callback(functools.partial(self._finished, consumer))
                if leased and len(leased) == free:
                    continue
            else:
                consumer.wake.clear()
            if self._stopping:
                break
            await wait_set(consumer.wake, max(timeout, 0.01))

    @staticmethod
    def _finished(consumer: _Consumer, task: asyncio.Task[None]) -> None:
        consumer.in_flight.discard(task)
        consumer.wake.set()

    async def _deliver(self, consumer: _Consumer, delivery: StoredDelivery) -> None:
        inbound = InboundMessage(
            body=delivery.body,
            headers=delivery.headers,
            content_type=delivery.content_type,
            message_id=delivery.message_id,
            routing_key=delivery.routing_key,
            attempt=delivery.attempt,
        )
        service, event_type = consumer.service, delivery.routing_key
        retry_in: float | None = None
        reason: str | None = None
        kind = ""
        try:
            await consumer.handler(inbound)
        except PoisonMessage as exc:
            reason, kind = str(exc) or "poison message", "poison"
        except Exception as exc:
            if delivery.attempt < self._retry.max_attempts:
                retry_in = self._retry.delay_before(delivery.attempt + 1)
            else:
                reason, kind = f"{type(exc).__name__}: {exc}", "exhausted"
        try:
            async with self._engine.begin() as conn:
                if reason is not None:
                    await self._store.dead_letter(conn, delivery.id, self._owner, reason)
                elif retry_in is not None:
                    await self._store.retry_later(conn, delivery, self._owner, retry_in)
                else:
                    await self._store.ack(conn, delivery.id, self._owner)
        except Exception:
            # Not settled: the lease runs out and the row is delivered again.
            log.exception("delivery %s of %s not settled", delivery.message_id, service)
            return
        if reason is not None:
            EVENTS_DEAD_LETTERED.labels(
                service=service, event_type=event_type, reason_kind=kind
            ).inc()
            log.warning(
                "dead-lettered %s of %s after %d tries: %s",
                delivery.message_id,
                service,
                delivery.attempt,
                reason,
            )
        elif retry_in is not None:
            EVENTS_RETRIED.labels(service=service, event_type=event_type).inc()

    # -- dead letters --------------------------------------------------------

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        """The service's dead letters, oldest first, without removing them.

        Raises SQLAlchemy errors when the database cannot be reached.
        """
        async with self._engine.connect() as conn:
            stored = await self._store.dead_letters(conn, service, limit)
            depth = await self._store.dead_letter_count(conn, service)
        DEAD_LETTER_DEPTH.labels(service=service).set(depth)
        return [
            DeadLetter(
                dead_letter_id=str(letter.id),
                service=service,
                routing_key=letter.routing_key,
                message_id=letter.message_id,
                reason=letter.reason,
                attempts=letter.attempts,
                dead_lettered_at=letter.dead_lettered_at,
                headers=letter.headers,
                body=letter.body,
            )
            for letter in stored
        ]

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Queue dead letters (all, or those named) again, try count back at 1; how many.

        Ids that are not this transport's dead letters are ignored. Raises
        SQLAlchemy errors when the database cannot be reached.
        """
        ids = None if dead_letter_ids is None else [int(i) for i in dead_letter_ids if i.isdigit()]
        async with self._engine.begin() as conn:
            count = await self._store.replay(conn, service, ids)
            depth = await self._store.dead_letter_count(conn, service)
        DEAD_LETTER_DEPTH.labels(service=service).set(depth)
        if count:
            EVENTS_REPLAYED.labels(service=service).inc(count)
        return count
