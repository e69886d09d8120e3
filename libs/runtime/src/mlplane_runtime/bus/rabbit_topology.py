"""What `RabbitTransport` declares on RabbitMQ for each service, and how to remove it.

Per subscribed service:
- its durable quorum queue `mlplane.<service>`, bound to `mlplane.events` once per
  event type it consumes (replicas of the service compete on it);
- one delay queue per retry level, `mlplane.<service>.retry.<level>`: every message
  in it waits the same `x-message-ttl` (per-message TTLs would block behind a longer
  one at the head), then RabbitMQ dead-letters it through the default exchange back
  to the service queue. Level n holds messages waiting for try n + 1;
- its dead-letter queue `mlplane.<service>.dlq`, bound to `mlplane.dlx` by its own
  name. It is a classic queue: a message fetched with basic.get and rejected with
  requeue goes back to its original place there, so the DLQ can be listed without
  being reordered or emptied.
"""

from __future__ import annotations

import aio_pika
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from mlplane_contracts.topology import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    dead_letter_queue_name,
    queue_name,
    retry_queue_name,
)

from mlplane_runtime.bus.base import RetryPolicy

EVENTS_EXCHANGE = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE_DECL = RabbitExchange(
    DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True
)

# The most retry levels `delete_service_queues` removes when not told the policy.
_MAX_RETRY_LEVELS = 32


def retry_levels(retry: RetryPolicy) -> range:
    """The retry levels a policy needs: one per try after the first."""
    return range(1, max(retry.max_attempts, 1))


def service_queue(service: str) -> RabbitQueue:
    """The service's own durable quorum queue."""
    return RabbitQueue(queue_name(service), queue_type=QueueType.QUORUM, durable=True)


def retry_queue(service: str, level: int, retry: RetryPolicy) -> RabbitQueue:
    """The delay queue in front of try `level + 1`, with that try's backoff as TTL."""
    ttl_ms = max(1, round(retry.delay_before(level + 1) * 1000))
    return RabbitQueue(
        retry_queue_name(service, level),
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments={
            "x-message-ttl": ttl_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue_name(service),
            # At-least-once dead-lettering keeps an expired message in the delay
            # queue until the service queue has confirmed it (needs reject-publish).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dead_letter_queue(service: str) -> RabbitQueue:
    """The service's durable classic DLQ (classic keeps order on reject-requeue)."""
    return RabbitQueue(
        dead_letter_queue_name(service),
        queue_type=QueueType.CLASSIC,
        durable=True,
        routing_key=dead_letter_queue_name(service),
    )


async def declare_service(
    broker: RabbitBroker,
    service: str,
    event_types: list[str],
    retry: RetryPolicy,
) -> None:
    """Declare the service's queue, its bindings, retry queues and DLQ (idempotent).

    Raises aio-pika's channel errors, e.g. PRECONDITION_FAILED when a queue exists
    with other arguments (another retry policy).
    """
    events = await broker.declare_exchange(EVENTS_EXCHANGE)
    dead_letters = await broker.declare_exchange(DEAD_LETTER_EXCHANGE_DECL)
    queue = await broker.declare_queue(service_queue(service))
    # FastStream binds a subscriber's queue with one routing key only; a service
    # consumes several event types, so the bindings go through aio-pika's queue.
    for event_type in event_types:
        await queue.bind(events, routing_key=event_type)
    for level in retry_levels(retry):
        await broker.declare_queue(retry_queue(service, level, retry))
    dlq = await broker.declare_queue(dead_letter_queue(service))
    await dlq.bind(dead_letters, routing_key=dead_letter_queue_name(service))


async def delete_service_queues(
    url: str, service: str, *, retry: RetryPolicy | None = None
) -> None:
    """Delete the service's queue, retry queues and DLQ (whatever of them exists).

    Leaves the shared exchanges alone. Without `retry`, removes retry levels up to
    32. Meant for tests and for decommissioning a service. Raises aio-pika's
    connection errors when RabbitMQ cannot be reached.
    """
    levels = retry_levels(retry) if retry is not None else range(1, _MAX_RETRY_LEVELS + 1)
    names = [
        queue_name(service),
        dead_letter_queue_name(service),
        *(retry_queue_name(service, level) for level in levels),
    ]
    # FastStream has no queue deletion; a short-lived plain aio-pika connection does it.
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in names:
            # RabbitMQ answers delete-ok for a queue that does not exist.
            await channel.queue_delete(name)
    finally:
        await connection.close()
