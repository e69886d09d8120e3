"""The idempotent consumer: a transport's delivery handler in front of a service's handlers.

Each delivery is decoded, deduplicated by the inbox and handled in one unit of work:
the inbox row, the handler's effects and the events it emits commit together, or
nothing does. A redelivered event finds its inbox row and is acknowledged with no
second effect. Errors are sorted for the transport: bad input (undecodable message,
unknown type, a non-retryable `MlplaneError`, invalid data) is poison and goes to
the dead-letter queue at once; anything else propagates and is retried.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from mlplane_contracts.amqp import decode
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.errors import EventDecodeError
from pydantic import ValidationError

from mlplane_runtime.bus.base import InboundMessage, PoisonMessage
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.telemetry.metrics import EVENTS_CONSUMED, HANDLER_DURATION
from mlplane_runtime.telemetry.tracing import consumer_span
from mlplane_runtime.uow import UnitOfWork

EventHandler = Callable[[CloudEvent, UnitOfWork], Awaitable[None]]
"""Handles one event inside the consumer's unit of work; must not commit it."""


class EventConsumer:
    """A `DeliveryHandler` dispatching decoded events to `handlers` by event type."""

    def __init__(
        self,
        service: str,
        uow_factory: Callable[[], UnitOfWork],
        handlers: Mapping[str, EventHandler],
    ) -> None:
        self._service = service
        self._uow_factory = uow_factory
        self._handlers = dict(handlers)

    @property
    def service(self) -> str:
        return self._service

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types this consumer handles (what the service's queue binds)."""
        return tuple(self._handlers)

    async def __call__(self, message: InboundMessage) -> None:
        """Handle one delivery; returning means it may be acknowledged.

        Raises `PoisonMessage` (with the reason) for a message that does not
        decode, a type with no handler, or a handler failing with a non-retryable
        `MlplaneError` or a pydantic `ValidationError`. Any other error propagates
        unchanged so the transport retries; nothing was committed then.
        """
        try:
            event = decode(message.headers, message.body, message.content_type)
        except EventDecodeError as exc:
            raise PoisonMessage(f"undecodable event: {exc}") from exc
        handler = self._handlers.get(event.type)
        if handler is None:
            raise PoisonMessage(f"{self._service} has no handler for {event.type!r}")
        started = time.perf_counter()
        with consumer_span(event, self._service) as span:
            async with self._uow_factory() as uow:
                if not await uow.record_handled(event):
                    span.set_attribute("mlplane.duplicate", True)
                    outcome = "duplicate"
                else:
                    await self._handle(handler, event, uow)
                    await uow.commit()
                    outcome = "handled"
        HANDLER_DURATION.labels(self._service, event.type).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(self._service, event.type, outcome).inc()

    async def _handle(self, handler: EventHandler, event: CloudEvent, uow: UnitOfWork) -> None:
        try:
            await handler(event, uow)
        except MlplaneError as exc:
            if exc.retryable:
                raise
            raise PoisonMessage(f"{type(exc).__name__}: {exc.detail}") from exc
        except ValidationError as exc:
            raise PoisonMessage(f"invalid data in {event.type}: {exc}") from exc
