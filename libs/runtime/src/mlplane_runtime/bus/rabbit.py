"""The RabbitMQ transport, on FastStream's `RabbitBroker` (aio-pika underneath).

Delivery semantics (the same as `EmbeddedTransport`'s):
- publish: persistent messages to `mlplane.events`, routing key = event type,
  publisher confirms awaited for the whole batch after sending all of it;
- consume: a service's handler runs on up to `concurrency` deliveries at once; the
  delivery is acknowledged only after the handler returns;
- a failed delivery is copied (try + 1) into the delay queue of its retry level
  and then acknowledged; after the last try, or at once for `PoisonMessage`, it is
  copied into the service's DLQ instead. The copy is confirmed before the ack, so a
  crash between the two duplicates a delivery (the inbox drops it) and never loses it;
- the connection is robust: after a connection loss aio-pika reconnects, restores
  channels and consumers, and unacknowledged deliveries come again. Publishes
  during the outage raise `Unavailable`, so the caller keeps its rows and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractIncomingMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange
from faststream.rabbit.message import RabbitMessage
from mlplane_contracts.topology import (
    ATTEMPT_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    dead_letter_queue_name,
    queue_name,
    retry_queue_name,
)

from mlplane_runtime.bus.base import (
    DeadLetter,
    DeliveryHandler,
    InboundMessage,
    OutboundMessage,
    PoisonMessage,
    RetryPolicy,
)
from mlplane_runtime.bus.rabbit_dead_letters import (
    as_dead_letter,
    dead_letter_headers,
    dead_letter_id,
    fetch_unacked,
    replay_headers,
    retry_headers,
)
from mlplane_runtime.bus.rabbit_topology import (
    DEAD_LETTER_EXCHANGE_DECL,
    EVENTS_EXCHANGE,
    declare_service,
    delete_service_queues,
    service_queue,
)
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.telemetry.metrics import (
    EVENTS_DEAD_LETTERED,
    EVENTS_REPLAYED,
    EVENTS_RETRIED,
)

__all__ = ["RabbitTransport", "delete_service_queues"]

log = logging.getLogger(__name__)

_DEFAULT_EXCHANGE = RabbitExchange()
# After a failed retry or dead-letter publish the delivery is requeued; the pause
# keeps a broker that refuses publishes from turning that into a hot loop.
_REQUEUE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class _Publication:
    exchange: RabbitExchange
    routing_key: str
    body: bytes
    headers: Mapping[str, Any]
    message_id: str | None
    content_type: str | None
    # True for the copies we route to one named queue: a return means it is gone.
    mandatory: bool


@dataclass(slots=True)
class _Subscription:
    event_types: list[str]
    handler: DeliveryHandler


async def _undecoded(message: StreamMessage[Any]) -> StreamMessage[Any]:
    # The handler gets the raw delivery: bodies are decoded by the contracts'
    # codec later, and FastStream's JSON decoding would fail on malformed bodies
    # before our handler could dead-letter them.
    return message


def _attempt_of(headers: Mapping[str, Any]) -> int:
    try:
        return max(1, int(headers.get(ATTEMPT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


class RabbitTransport:
    """The `Transport` on RabbitMQ: topology, confirmed publishing, retries, DLQ, replay.

    `concurrency` bounds the deliveries handled at once per service; `prefetch`
    (default: `concurrency`) is how many RabbitMQ hands over unacknowledged.
    `connection_name` shows in RabbitMQ's connection list (client properties).
    """

    def __init__(
        self,
        url: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        prefetch: int | None = None,
        concurrency: int = 32,
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
        client_properties: Any = (
            {"connection_name": self._connection_name} if self._connection_name else None
        )
        broker = RabbitBroker(
            self._url,
            client_properties=client_properties,
            reconnect_interval=self._reconnect_interval_s,
            graceful_timeout=self._graceful_timeout_s,
            app_id="mlplane",
            apply_types=False,
            log_level=logging.DEBUG,
        )
        slots = asyncio.Semaphore(self._concurrency) if self._prefetch > self._concurrency else None
        for service, subscription in self._subscriptions.items():
            subscriber = broker.subscriber(
                service_queue(service),
                channel=Channel(prefetch_count=self._prefetch),
                ack_policy=AckPolicy.MANUAL,
                no_reply=True,
                decoder=_undecoded,
            )
            subscriber(self._consumer(service, subscription.handler, slots))
        try:
            await broker.connect()
            await broker.declare_exchange(EVENTS_EXCHANGE)
            await broker.declare_exchange(DEAD_LETTER_EXCHANGE_DECL)
            for service, subscription in self._subscriptions.items():
                await declare_service(broker, service, subscription.event_types, self._retry)
            await broker.start()
        except BaseException:
            await broker.stop()
            raise
        self._broker = broker

    async def stop(self) -> None:
        """Stop consuming (in-flight handlers finish, up to the graceful timeout), disconnect."""
        broker, self._broker = self._broker, None
        if broker is not None:
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
                _Publication(
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

    async def _publish_confirmed(self, publications: Sequence[_Publication]) -> None:
        broker = self._started_broker()
        if not publications:
            return
        # Every publish is started before any confirm is awaited. Tasks start in
        # creation order and the channel's publish lock is FIFO, so the frames leave
        # in batch order on the one default channel.
        tasks = [asyncio.ensure_future(self._publish_one(broker, p)) for p in publications]
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                results = await asyncio.gather(*tasks, return_exceptions=True)
        except TimeoutError:
            for task in tasks:
                task.cancel()
            raise Unavailable(
                f"RabbitMQ did not confirm {len(publications)} messages within "
                f"{self._confirm_timeout_s} s"
            ) from None
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise Unavailable(
                f"RabbitMQ did not confirm {len(failures)} of {len(publications)} messages: "
                f"{failures[0]!r}"
            ) from failures[0]

    async def _publish_one(self, broker: RabbitBroker, publication: _Publication) -> None:
        result = await broker.publish(
            publication.body,
            exchange=publication.exchange,
            routing_key=publication.routing_key,
            mandatory=publication.mandatory,
            persist=True,
            headers=dict(publication.headers),
            message_id=publication.message_id,
            content_type=publication.content_type,
        )
        # A nack raises inside aio-pika; a returned (unroutable) mandatory message
        # comes back as the message instead of the Basic.Ack frame.
        if publication.mandatory and not isinstance(result, aiormq.spec.Basic.Ack):
            raise Unavailable(
                f"RabbitMQ returned the message for {publication.routing_key!r}: no such queue"
            )

    # -- consuming ---------------------------------------------------------

    def _consumer(
        self, service: str, handler: DeliveryHandler, slots: asyncio.Semaphore | None
    ) -> Any:
        async def on_delivery(message: RabbitMessage) -> None:
            if slots is None:
                await self._deliver(service, handler, message.raw_message)
                return
            async with slots:
                await self._deliver(service, handler, message.raw_message)

        on_delivery.__name__ = f"deliver_to_{service.replace('-', '_')}"
        return on_delivery

    async def _deliver(
        self, service: str, handler: DeliveryHandler, raw: AbstractIncomingMessage
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
            await raw.ack()
        except Exception:
            # The retry or dead-letter copy was not confirmed, or the ack did not
            # reach RabbitMQ: the delivery stays ours to redo. Requeue it (a closed
            # channel has requeued it already) and keep serving other messages.
            log.exception(
                "delivery %s on %s not settled; it will come again",
                inbound.message_id,
                queue_name(service),
            )
            await asyncio.sleep(_REQUEUE_PAUSE_S)
            with contextlib.suppress(Exception):
                await raw.nack(requeue=True)

    async def _schedule_retry(self, service: str, inbound: InboundMessage) -> None:
        await self._publish_confirmed(
            [
                _Publication(
                    exchange=_DEFAULT_EXCHANGE,
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
                _Publication(
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

    @contextlib.asynccontextmanager
    async def _dead_letter_queue(self, service: str) -> AsyncIterator[Any]:
        broker = self._started_broker()
        # FastStream keeps channels for its own publishers and subscribers; reading
        # a queue with basic.get on a channel we can close (returning every
        # unacknowledged message in place) needs aio-pika's channel directly.
        connection = await broker.connect()
        async with self._dead_letter_lock:
            channel = await connection.channel(publisher_confirms=False)
            try:
                yield await channel.get_queue(dead_letter_queue_name(service), ensure=True)
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        """The service's DLQ, oldest first, up to `limit`, without removing anything.

        Raises aio-pika's channel errors (NOT_FOUND when the service never started
        on this broker), RuntimeError when the transport is not started.
        """
        async with self._dead_letter_queue(service) as queue:
            return [as_dead_letter(service, m) for m in await fetch_unacked(queue, limit)]

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Send dead letters (all, or those named) back to `mlplane.<service>`, try 1 again.

        Each copy is confirmed before its dead letter is acknowledged, so a crash
        in between replays twice (the inbox drops one) and loses nothing. Returns
        how many were replayed. Raises `Unavailable` when a copy is not confirmed
        (nothing is removed then).
        """
        wanted = None if dead_letter_ids is None else set(dead_letter_ids)
        async with self._dead_letter_queue(service) as queue:
            fetched = await fetch_unacked(queue, None)
            chosen = [m for m in fetched if wanted is None or dead_letter_id(m) in wanted]
            letters = [as_dead_letter(service, m) for m in chosen]
            await self._publish_confirmed(
                [
                    _Publication(
                        exchange=_DEFAULT_EXCHANGE,
                        routing_key=queue_name(service),
                        body=letter.body,
                        headers={
                            **replay_headers(letter.headers),
                            ORIGINAL_ROUTING_KEY_HEADER: letter.routing_key,
                        },
                        message_id=letter.message_id,
                        content_type=message.content_type,
                        mandatory=True,
                    )
                    for letter, message in zip(letters, chosen, strict=True)
                ]
            )
            for message in chosen:
                await message.ack()
        if chosen:
            EVENTS_REPLAYED.labels(service=service).inc(len(chosen))
        return len(chosen)
