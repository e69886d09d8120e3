"""The RabbitMQ transport, on FastStream's `RabbitBroker` (aio-pika underneath).

Delivery semantics (the same as `EmbeddedTransport`'s):
- publish: persistent messages to `mlplane.events`, routing key = event type,
  publisher confirms awaited for the whole batch after sending all of it;
- consume: a service's handler runs on up to `concurrency` deliveries at once; the
  delivery is acknowledged only after the handler returns, together with the other
  settled deliveries before it (one `multiple` ack per run, see `rabbit_acks`).
  FastStream declares each service's subscriber; deliveries come from aio-pika
  underneath it, since FastStream's per-message path cost more CPU than the rest;
- a failed delivery is copied (try + 1) into the delay queue of its retry level
  and then acknowledged; after the last try, or at once for `PoisonMessage`, it is
  copied into the service's DLQ instead. The copy is confirmed before the ack, so a
  crash between the two duplicates a delivery (the inbox drops it) and never loses it;
- the connection is robust: after a connection loss aio-pika reconnects, restores
  channels and consumers, and unacknowledged deliveries come again. A publish
  during the outage waits for the new connection up to the confirm timeout, or
  raises `Unavailable`, so the caller keeps its rows and publishes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, ConsumerTag
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.message import RabbitMessage
from mlplane_contracts.topology import (
    ATTEMPT_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    dead_letter_queue_name,
    queue_name,
    retry_queue_name,
)
from yarl import URL

from mlplane_runtime.bus.base import (
    DeadLetter,
    DeliveryHandler,
    InboundMessage,
    OutboundMessage,
    PoisonMessage,
    RetryPolicy,
)
from mlplane_runtime.bus.rabbit_acks import AckWindow
from mlplane_runtime.bus.rabbit_dead_letters import (
    dead_letter_headers,
    list_dead_letters,
    replay_dead_letters,
    replay_headers,
    retry_headers,
)
from mlplane_runtime.bus.rabbit_publish import DEFAULT_EXCHANGE, Publication, publish_confirmed
from mlplane_runtime.bus.rabbit_topology import (
    DEAD_LETTER_EXCHANGE_DECL,
    EVENTS_EXCHANGE,
    declare_service,
    delete_service_queues,
    service_queue,
)
from mlplane_runtime.telemetry.metrics import (
    EVENTS_DEAD_LETTERED,
    EVENTS_REPLAYED,
    EVENTS_RETRIED,
)

__all__ = ["RabbitTransport", "delete_service_queues"]

log = logging.getLogger(__name__)

# After a failed retry or dead-letter publish the delivery is requeued; the pause
# keeps a broker that refuses publishes from turning that into a hot loop.
_REQUEUE_PAUSE_S = 1.0


@dataclass(slots=True)
class _Subscription:
    event_types: list[str]
    handler: DeliveryHandler


async def _undecoded(message: StreamMessage[Any]) -> StreamMessage[Any]:
    # The handler gets the raw delivery: bodies are decoded by the contracts'
    # codec later, and FastStream's JSON decoding would fail on malformed bodies
    # before our handler could dead-letter them.
    return message


async def _consumed_underneath(message: RabbitMessage) -> None:
    raise RuntimeError("RabbitTransport consumes through aio-pika, never through this")


async def _requeue(raw: AbstractIncomingMessage) -> bool:
    """Nack `raw` with requeue; True when the nack went out.

    A closed channel (raising, or cancelling us) has requeued the delivery already.
    """
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await raw.nack(requeue=True)
        return True
    return False


def _attempt_of(headers: Mapping[str, Any]) -> int:
    try:
        return max(1, int(headers.get(ATTEMPT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


class RabbitTransport:
    """The `Transport` on RabbitMQ: topology, confirmed publishing, retries, DLQ, replay.

    `concurrency` bounds the deliveries handled at once per service; `prefetch`
    (default: `concurrency`) is how many RabbitMQ hands over unacknowledged. The
    default is high because the service's `EventConsumer` handles the deliveries
    waiting at once in a few shared transactions (its `max_workers` bound the
    database work): with 32, batches stayed small and per-transaction round trips
    cost about a fifth of the consumer's CPU.
    `connection_name` shows in RabbitMQ's connection list (client properties).
    """

    def __init__(
        self,
        url: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        prefetch: int | None = None,
        concurrency: int = 256,
        connection_name: str | None = None,
        confirm_timeout_s: float = 30.0,
        graceful_timeout_s: float = 30.0,
        reconnect_interval_s: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._url = url
        self._retry = retry
        self._concurrency = concurrency
        self._prefetch = max(prefetch or concurrency, 1)
        self._connection_name = connection_name
        self._confirm_timeout_s = confirm_timeout_s
        self._graceful_timeout_s = graceful_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._subscriptions: dict[str, _Subscription] = {}
        self._broker: RabbitBroker | None = None
        self._consumer_channel = Channel(prefetch_count=self._prefetch)
        self._consumers: list[tuple[AbstractQueue, ConsumerTag]] = []
        self._consuming = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._acks: AckWindow | None = None
        # One lock for DLQ reads: two listings at once would each see only the
        # messages the other has not fetched.
        self._dead_letter_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        """Consume `event_types` on `mlplane.<service>` with `handler`; call before `start`.

        Raises ValueError for an invalid service name, a service subscribed twice,
        or no event types; RuntimeError once started.
        """
        queue_name(service)  # validates the name
        if self._broker is not None:
            raise RuntimeError("subscribe before start")
        if service in self._subscriptions:
            raise ValueError(f"service {service!r} is already subscribed")
        if not event_types:
            raise ValueError("subscribe to at least one event type")
        self._subscriptions[service] = _Subscription(list(dict.fromkeys(event_types)), handler)

    async def start(self) -> None:
        """Connect, declare the topology of every subscribed service, start consuming.

        Idempotent: a second call, or another replica, declares the same things.
        Raises aio-pika's connection errors when RabbitMQ cannot be reached and its
        channel errors when existing queues have other arguments (another policy).
        """
        if self._broker is not None:
            return
        url = URL(self._url)
        if self._connection_name:
            # aiormq takes the connection name (client property `connection_name`)
            # from the URL's `name` query parameter.
            url = url.update_query(name=self._connection_name)
        broker = RabbitBroker(
            str(url),
            reconnect_interval=self._reconnect_interval_s,
            graceful_timeout=self._graceful_timeout_s,
            app_id="mlplane",
            apply_types=False,
            log_level=logging.DEBUG,
        )
        for service in self._subscriptions:
            # Declared on the broker so it describes every service queue it serves;
            # consumed below through aio-pika underneath (see `_consume`).
            broker.subscriber(
                service_queue(service),
                channel=self._consumer_channel,
                ack_policy=AckPolicy.MANUAL,
                no_reply=True,
                decoder=_undecoded,
            )(_consumed_underneath)
        try:
            await broker.connect()
            await broker.declare_exchange(EVENTS_EXCHANGE)
            await broker.declare_exchange(DEAD_LETTER_EXCHANGE_DECL)
            for service, subscription in self._subscriptions.items():
                await declare_service(broker, service, subscription.event_types, self._retry)
            self._broker = broker
            for service, subscription in self._subscriptions.items():
                await self._consume(broker, service, subscription.handler)
        except BaseException:
            self._broker = None
            with contextlib.suppress(Exception):
                await self._stop_consuming()
            with contextlib.suppress(Exception):
                await broker.stop()
            raise

    async def stop(self) -> None:
        """Stop consuming (in-flight handlers finish, up to the graceful timeout), disconnect."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await self._stop_consuming()
            await broker.stop()

    async def ping(self) -> bool:
        """True when connected to RabbitMQ right now (for /readyz)."""
        broker = self._broker
        if broker is None:
            return False
        try:
            return await broker.ping(timeout=1.0)
        except Exception:
            return False

    # -- publishing --------------------------------------------------------

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Publish to `mlplane.events` in order; return once RabbitMQ confirmed all.

        Persistent delivery, headers and message id kept. A type no queue is bound
        to is dropped by RabbitMQ without error (nobody consumes it). Raises
        `Unavailable` when any message is nacked or unconfirmed (connection lost,
        confirm timeout), so the caller keeps them and publishes again.
        """
        await self._publish_confirmed(
            [
                Publication(
                    exchange=EVENTS_EXCHANGE,
                    routing_key=message.routing_key,
                    body=message.body,
                    headers=message.headers,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    mandatory=False,
                )
                for message in messages
            ]
        )

    def _started_broker(self) -> RabbitBroker:
        if self._broker is None:
            raise RuntimeError("the transport is not started")
        return self._broker

    async def _publish_confirmed(self, publications: Sequence[Publication]) -> None:
        await publish_confirmed(
            self._started_broker(), publications, timeout_s=self._confirm_timeout_s
        )

    # -- consuming ---------------------------------------------------------

    async def _consume(self, broker: RabbitBroker, service: str, handler: DeliveryHandler) -> None:
        """Start consuming the service's queue on the broker's prefetch-limited channel.

        Deliveries go from aio-pika straight to `_deliver`: FastStream's
        per-message path (message object, context, logging middleware, decoder
        wrapper) cost more CPU than decoding and acking the delivery. The channel
        is FastStream's robust one, so the consumer is restored after a reconnect.
        """
        channel = await broker.config.channel_manager.get_channel(self._consumer_channel)
        queue = await channel.declare_queue(
            queue_name(service), durable=True, arguments={"x-queue-type": "quorum"}
        )
        # aiormq runs every delivery it hands over as a task at once: with a
        # prefetch above the concurrency, a semaphore holds the extra ones.
        slots = asyncio.Semaphore(self._concurrency) if self._prefetch > self._concurrency else None

        async def on_delivery(raw: AbstractIncomingMessage) -> None:
            acks = self._ack_window(raw.channel)
            acks.received(raw.delivery_tag or 0)
            if not self._consuming:
                # Stopping: back to the queue, for another replica or the restart.
                if await _requeue(raw):
                    acks.forget(raw.delivery_tag or 0)
                return
            self._in_flight += 1
            try:
                if slots is None:
                    await self._deliver(service, handler, raw, acks)
                else:
                    async with slots:
                        await self._deliver(service, handler, raw, acks)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()

        self._consuming = True
        tag = await queue.consume(on_delivery, no_ack=False)
        self._consumers.append((queue, tag))

    def _ack_window(self, channel: aiormq.abc.AbstractChannel) -> AckWindow:
        window = self._acks
        if window is None or window.channel is not channel:
            # A new channel after a reconnect: its tags start again at 1, and
            # the old one's unacknowledged deliveries are RabbitMQ's again.
            window = self._acks = AckWindow(channel)
        return window

    async def _stop_consuming(self) -> None:
        """Cancel the consumers, then wait up to the graceful timeout for handlers."""
        self._consuming = False
        consumers, self._consumers = self._consumers, []
        for queue, tag in consumers:
            with contextlib.suppress(Exception):
                if not queue.channel.is_closed:
                    await queue.cancel(tag)
        if self._in_flight:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._graceful_timeout_s)

    async def _deliver(
        self,
        service: str,
        handler: DeliveryHandler,
        raw: AbstractIncomingMessage,
        acks: AckWindow,
    ) -> None:
        headers = dict(raw.headers or {})
        inbound = InboundMessage(
            body=raw.body,
            headers=headers,
            content_type=raw.content_type,
            message_id=raw.message_id,
            routing_key=str(headers.get(ORIGINAL_ROUTING_KEY_HEADER) or raw.routing_key or ""),
            attempt=_attempt_of(headers),
        )
        try:
            try:
                await handler(inbound)
            except PoisonMessage as exc:
                await self._dead_letter(service, inbound, str(exc) or "poison message", "poison")
            except Exception as exc:
                if inbound.attempt < self._retry.max_attempts:
                    await self._schedule_retry(service, inbound)
                else:
                    reason = f"{type(exc).__name__}: {exc}"
                    await self._dead_letter(service, inbound, reason, "exhausted")
            # Acknowledged with the run of settled deliveries it ends or joins.
            acks.ack(raw.delivery_tag or 0)
        except asyncio.CancelledError:
            # aiormq cancels the delivery's task when its channel closes; RabbitMQ
            # has requeued the delivery and gives it again after the reconnect.
            # Nothing follows in this task, so ending it quietly loses nothing.
            log.warning(
                "delivery %s on %s not settled: channel closed", inbound.message_id, service
            )
        except Exception as exc:
            # The retry or dead-letter copy was not confirmed, or the ack did not
            # reach RabbitMQ: the delivery stays ours to redo. Requeue it and keep
            # serving other messages.
            log.warning(
                "delivery %s on %s not settled (%r); requeued", inbound.message_id, service, exc
            )
            await asyncio.sleep(_REQUEUE_PAUSE_S)
            if await _requeue(raw):
                acks.forget(raw.delivery_tag or 0)

    async def _schedule_retry(self, service: str, inbound: InboundMessage) -> None:
        await self._publish_confirmed(
            [
                Publication(
                    exchange=DEFAULT_EXCHANGE,
                    # Level n is the wait before try n + 1.
                    routing_key=retry_queue_name(service, inbound.attempt),
                    body=inbound.body,
                    headers=retry_headers(
                        inbound.headers,
                        attempt=inbound.attempt + 1,
                        routing_key=inbound.routing_key,
                    ),
                    message_id=inbound.message_id,
                    content_type=inbound.content_type,
                    mandatory=True,
                )
            ]
        )
        EVENTS_RETRIED.labels(service=service, event_type=inbound.routing_key).inc()

    async def _dead_letter(
        self, service: str, inbound: InboundMessage, reason: str, reason_kind: str
    ) -> None:
        await self._publish_confirmed(
            [
                Publication(
                    exchange=DEAD_LETTER_EXCHANGE_DECL,
                    routing_key=dead_letter_queue_name(service),
                    body=inbound.body,
                    headers=dead_letter_headers(
                        inbound.headers,
                        reason=reason,
                        attempts=inbound.attempt,
                        routing_key=inbound.routing_key,
                    ),
                    message_id=inbound.message_id,
                    content_type=inbound.content_type,
                    mandatory=True,
                )
            ]
        )
        EVENTS_DEAD_LETTERED.labels(
            service=service, event_type=inbound.routing_key, reason_kind=reason_kind
        ).inc()
        log.warning(
            "dead-lettered %s on %s after %d tries: %s",
            inbound.message_id,
            queue_name(service),
            inbound.attempt,
            reason,
        )

    # -- dead letters --------------------------------------------------------

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        """The service's DLQ, oldest first, up to `limit`, without removing anything.

        An undeclared DLQ is empty. Raises aio-pika's connection errors, and
        RuntimeError when the transport is not started.
        """
        connection = await self._started_broker().connect()
        async with self._dead_letter_lock:
            return await list_dead_letters(connection, service, limit)

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Send dead letters (all, or those named) back to `mlplane.<service>`, try 1 again.

        Each copy is confirmed before its dead letter is acknowledged, so a crash
        in between replays twice (the inbox drops one) and loses nothing. Returns
        how many were replayed. Raises `Unavailable` when a copy is not confirmed
        (nothing is removed then).
        """
        connection = await self._started_broker().connect()

        async def send_back(letters: Sequence[AbstractIncomingMessage]) -> None:
            await self._publish_confirmed(
                [
                    Publication(
                        exchange=DEFAULT_EXCHANGE,
                        routing_key=queue_name(service),
                        body=letter.body,
                        headers=replay_headers(letter.headers or {}, letter.routing_key or ""),
                        message_id=letter.message_id,
                        content_type=letter.content_type,
                        mandatory=True,
                    )
                    for letter in letters
                ]
            )

        async with self._dead_letter_lock:
            count = await replay_dead_letters(connection, service, dead_letter_ids, send_back)
        if count:
            EVENTS_REPLAYED.labels(service=service).inc(count)
        return count
