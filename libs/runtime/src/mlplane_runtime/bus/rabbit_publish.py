"""Confirmed, pipelined publishing through FastStream's `RabbitBroker`.

A batch is sent whole before any confirm is awaited (waiting for each confirm in
turn would cost one broker round trip per message), then every confirm is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiormq
from faststream.rabbit import RabbitBroker, RabbitExchange

from mlplane_runtime.errors import Unavailable

DEFAULT_EXCHANGE = RabbitExchange()
"""AMQP's default exchange: routing key = queue name (delay queues, replays)."""


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
    # Tasks start in creation order and the channel's publish lock is FIFO, so the
    # frames leave in batch order on the broker's one default channel.
    tasks = [asyncio.ensure_future(_publish_one(broker, p)) for p in publications]
    try:
        async with asyncio.timeout(timeout_s):
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


async def _publish_one(broker: RabbitBroker, publication: Publication) -> None:
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
