"""Confirmed, pipelined publishing on the channel of FastStream's `RabbitBroker`.

A batch is sent whole before any confirm is awaited (waiting for each confirm in
turn would cost one broker round trip per message), then every confirm is awaited.

Messages go straight to the aio-pika exchange under the broker: the exchange is
looked up once per batch, not once per message, and no FastStream publish command
is built per message. That per-message path (command, exchange validation and
hashing, a fresh correlation id) cost as much CPU as aio-pika's publish itself,
which bounded the relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker, RabbitExchange

from mlplane_runtime.errors import Unavailable

DEFAULT_EXCHANGE = RabbitExchange()
"""AMQP's default exchange: routing key = queue name (delay queues, replays)."""

APP_ID = "mlplane"
"""The `app_id` property of every message mlplane publishes."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One persistent message to publish."""

    exchange: RabbitExchange
    routing_key: str
    body: bytes
    headers: Mapping[str, Any]
    message_id: str | None
    content_type: str | None
    # True for the copies routed to one named queue: a return means it is gone.
    # False for events: a type nobody is bound to is simply not consumed.
    mandatory: bool


async def publish_confirmed(
    broker: RabbitBroker, publications: Sequence[Publication], *, timeout_s: float
) -> None:
    """Publish all of `publications` in order; return once RabbitMQ confirmed each.

    Raises `Unavailable` when any is nacked, returned (mandatory only), or not
    confirmed within `timeout_s` (connection lost meanwhile).
    """
    if not publications:
        return
    exchanges: dict[str, AbstractExchange] = {}
    tasks: list[asyncio.Future[None]] = []
    try:
        async with asyncio.timeout(timeout_s):
            for publication in publications:
                name = publication.exchange.name
                exchange = exchanges.get(name)
                if exchange is None:
                    # The broker's declarer caches the exchange of its default
                    # channel (publisher confirms on), the one FastStream publishes on.
                    exchange = await broker.config.declarer.declare_exchange(
                        publication.exchange, declare=False
                    )
                    exchanges[name] = exchange
                # Tasks start in creation order and the channel's publish lock is
                # FIFO, so the frames leave in batch order on that one channel.
                tasks.append(asyncio.ensure_future(_publish_one(exchange, publication)))
            results = await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        for task in tasks:
            task.cancel()
        raise Unavailable(
            f"RabbitMQ did not confirm {len(publications)} messages within {timeout_s} s"
        ) from None
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise Unavailable(
            f"RabbitMQ did not confirm {len(failures)} of {len(publications)} messages: "
            f"{failures[0]!r}"
        ) from failures[0]


async def _publish_one(exchange: AbstractExchange, publication: Publication) -> None:
    result = await exchange.publish(
        aio_pika.Message(
            publication.body,
            headers=dict(publication.headers),
            content_type=publication.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=publication.message_id,
            app_id=APP_ID,
        ),
        routing_key=publication.routing_key,
        mandatory=publication.mandatory,
    )
    # A nack raises inside aio-pika; a returned (unroutable) mandatory message
    # comes back as the message instead of the Basic.Ack frame.
    if publication.mandatory and not isinstance(result, aiormq.spec.Basic.Ack):
        raise Unavailable(
            f"RabbitMQ returned the message for {publication.routing_key!r}: no such queue"
        )
