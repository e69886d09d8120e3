"""Events handed to a service's consumer the way the bus hands them over.

The event goes through the same encoding a publisher uses (binary content mode) and
arrives as the `InboundMessage` a transport builds, so a test exercises the consumer's
decoding, inbox and handlers, not a shortcut around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.bus.base import InboundMessage
from mlplane_runtime.consumer import EventConsumer

Deliver = Callable[[CloudEvent], Awaitable[None]]
"""Delivers one event to a consumer; returns when its effects are committed."""


def as_delivered(event: CloudEvent) -> InboundMessage:
    """The message a consumer receives for `event` published on the bus (first attempt)."""
    message = encode(event)
    return InboundMessage(
        body=message.body,
        headers=message.headers,
        content_type=message.content_type,
        message_id=event.id,
        routing_key=event.type,
    )


def deliverer(consumer: EventConsumer) -> Deliver:
    """Deliver one event to `consumer` as the bus would (encoded, then decoded).

    The consumer's errors (`PoisonMessage`, a handler's failure) propagate to the caller.
    """

    async def deliver(event: CloudEvent) -> None:
        await consumer(as_delivered(event))

    return deliver
