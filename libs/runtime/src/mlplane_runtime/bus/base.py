"""The one small interface every bus transport implements.

A transport moves already-encoded messages (see `mlplane_contracts.amqp`); it knows
nothing of CloudEvents payloads, the inbox or handlers. It owns delivery semantics:
at-least-once, retry with exponential backoff, and after `RetryPolicy.max_attempts`
tries the service's dead-letter queue with the error and try count recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """An encoded event ready to publish: routing key = CloudEvent type."""

    routing_key: str
    body: bytes
    headers: Mapping[str, Any]
    message_id: str
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A delivered message as the consumer sees it; `attempt` counts from 1."""

    body: bytes
    headers: Mapping[str, Any]
    content_type: str | None
    message_id: str | None
    routing_key: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message parked in a service's dead-letter queue, with why it got there."""

    dead_letter_id: str
    service: str
    routing_key: str
    message_id: str | None
    reason: str
    attempts: int
    dead_lettered_at: datetime | None
    headers: Mapping[str, Any] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: try n (n >= 2) waits base * factor**(n-2), capped."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 60.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before try `attempt` (the first try waits nothing)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_delay_s, self.base_delay_s * self.factor ** (attempt - 2)))


class PoisonMessage(Exception):
    """Raised by a delivery handler for a message no retry can fix (bad input).

    The transport dead-letters it at once with `str(exc)` as the reason.
    """


DeliveryHandler = Callable[[InboundMessage], Awaitable[None]]
"""Returns normally: ack. Raises PoisonMessage: DLQ now. Raises anything else: retry."""


class Transport(Protocol):
    """Publish with confirms, consume with retries and a DLQ, inspect and replay it."""

    async def start(self) -> None:
        """Connect and declare the topology (idempotent); start registered consumers."""

    async def stop(self) -> None:
        """Stop consuming (letting in-flight handlers finish), then disconnect."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Publish in order; return only when the broker has confirmed every one.

        A type no service consumes is dropped without error. Raises on any
        unconfirmed message (`mlplane_runtime.errors.Unavailable` from both
        transports), so the caller (the outbox relay) keeps the rows and tries again.
        """

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        """Consume `event_types` on the service's own queue; call before `start`.

        One subscription per service (its handler dispatches by routing key); a
        second one for the same service raises ValueError.
        """

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        """The messages in the service's DLQ, oldest first, without removing them."""

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or the ones named) back to the service's queue.

        Returns how many were replayed; their try count starts again at 1.
        """

    async def ping(self) -> bool:
        """True when the transport can publish right now (for /readyz)."""
