"""The idempotent consumer: a transport's delivery handler in front of a service's handlers.

Each delivery is decoded, deduplicated by the inbox and handled in a unit of work:
the inbox row, the handler's effects and the events it emits commit together, or
nothing does. A redelivered event finds its inbox row and is acknowledged with no
second effect. Errors are sorted for the transport: bad input (undecodable message,
unknown type, a non-retryable `MlplaneError`, invalid data) is poison and goes to
the dead-letter queue at once; anything else propagates and is retried.

Deliveries that arrive while others are being handled are handled together, in one
transaction (one inbox statement, one commit), because per-message transactions
cost more CPU than the handlers themselves. A delivery is acknowledged only after
the transaction that holds its effects commits. If any handler in such a batch
fails, the batch is rolled back and each of its deliveries is handled alone, so a
bad event never takes its neighbours down with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

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

_EventKey = tuple[str, str]


@dataclass(eq=False)
class _Delivery:
    event: CloudEvent
    handler: EventHandler
    done: asyncio.Future[None]
    outcome: str = field(default="handled")

    @property
    def key(self) -> _EventKey:
        return (self.event.source, self.event.id)


class EventConsumer:
    """A `DeliveryHandler` dispatching decoded events to `handlers` by event type.

    `max_batch` bounds how many waiting deliveries share one transaction and
    `max_workers` how many transactions run at once.
    """

    def __init__(
        self,
        service: str,
        uow_factory: Callable[[], UnitOfWork],
        handlers: Mapping[str, EventHandler],
        *,
        max_batch: int = 128,
        max_workers: int = 2,
    ) -> None:
        if max_batch < 1 or max_workers < 1:
            raise ValueError("max_batch and max_workers must be at least 1")
        self._service = service
        self._uow_factory = uow_factory
        self._handlers = dict(handlers)
        self._max_batch = max_batch
        self._max_workers = max_workers
        self._waiting: deque[_Delivery] = deque()
        self._workers: set[asyncio.Task[None]] = set()

    @property
    def service(self) -> str:
        return self._service

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types this consumer handles (what the service's queue binds)."""
        return tuple(self._handlers)

    async def __call__(self, message: InboundMessage) -> None:
        """Handle one delivery; returning means its effects are committed and it may be acked.

        Raises `PoisonMessage` (with the reason) for a message that does not
        decode, a type with no handler, or a handler failing with a non-retryable
        `MlplaneError` or a pydantic `ValidationError`. Any other error propagates
        unchanged so the transport retries; nothing of this event was committed then.
        """
        try:
            event = decode(message.headers, message.body, message.content_type)
        except EventDecodeError as exc:
            raise PoisonMessage(f"undecodable event: {exc}") from exc
        handler = self._handlers.get(event.type)
        if handler is None:
            raise PoisonMessage(f"{self._service} has no handler for {event.type!r}")
        delivery = _Delivery(event, handler, asyncio.get_running_loop().create_future())
        self._waiting.append(delivery)
        self._wake_a_worker()
        await delivery.done

    # -- batching ----------------------------------------------------------

    def _wake_a_worker(self) -> None:
        if len(self._workers) >= self._max_workers:
            return  # a running worker takes it with its next batch
        # A fresh context: the worker must not inherit the first delivery's span.
        task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _drain(self) -> None:
        while self._waiting:
            batch: list[_Delivery] = []
            while self._waiting and len(batch) < self._max_batch:
                delivery = self._waiting.popleft()
                if not delivery.done.done():  # its delivery was cancelled: redelivered later
                    batch.append(delivery)
            if batch:
                await self._handle_batch(batch)

    async def _handle_batch(self, batch: Sequence[_Delivery]) -> None:
        started = time.perf_counter()
        firsts: dict[_EventKey, _Delivery] = {}
        copies: list[_Delivery] = []
        for delivery in batch:
            if delivery.key in firsts:
                copies.append(delivery)
            else:
                firsts[delivery.key] = delivery
        unique = list(firsts.values())
        if len(unique) == 1:
            await self._handle_alone(unique[0])
        else:
            try:
                await self._handle_together(unique)
            except Exception:
                # Someone in the batch failed and everything rolled back: find out
                # who, one at a time, so the others still take effect.
                for delivery in unique:
                    await self._handle_alone(delivery)
            else:
                for delivery in unique:
                    _settle(delivery)
        for copy in copies:
            copy.outcome = "duplicate"
            original = firsts[copy.key].done
            if original.cancelled() or original.exception() is None:
                _settle(copy)
            else:
                _settle(copy, original.exception())
        elapsed = time.perf_counter() - started
        for delivery in batch:
            HANDLER_DURATION.labels(self._service, delivery.event.type).observe(elapsed)
            if delivery.outcome != "failed":  # failures are counted as retried or dead-lettered
                EVENTS_CONSUMED.labels(self._service, delivery.event.type, delivery.outcome).inc()

    async def _handle_together(self, deliveries: Sequence[_Delivery]) -> None:
        async with self._uow_factory() as uow:
            fresh = await uow.record_handled_many([d.event for d in deliveries])
            for delivery in deliveries:
                with consumer_span(delivery.event, self._service) as span:
                    if delivery.key in fresh:
                        await self._run_handler(delivery, uow)
                    else:
                        span.set_attribute("mlplane.duplicate", True)
                        delivery.outcome = "duplicate"
            await uow.commit()

    async def _handle_alone(self, delivery: _Delivery) -> None:
        try:
            with consumer_span(delivery.event, self._service) as span:
                async with self._uow_factory() as uow:
                    if await uow.record_handled(delivery.event):
                        await self._run_handler(delivery, uow)
                        await uow.commit()
                    else:
                        span.set_attribute("mlplane.duplicate", True)
                        delivery.outcome = "duplicate"
        except Exception as exc:
            delivery.outcome = "failed"
            _settle(delivery, exc)
        else:
            _settle(delivery)

    async def _run_handler(self, delivery: _Delivery, uow: UnitOfWork) -> None:
        event = delivery.event
        try:
            await delivery.handler(event, uow)
        except MlplaneError as exc:
            if exc.retryable:
                raise
            raise PoisonMessage(f"{type(exc).__name__}: {exc.detail}") from exc
        except ValidationError as exc:
            raise PoisonMessage(f"invalid data in {event.type}: {exc}") from exc
        delivery.outcome = "handled"


def _settle(delivery: _Delivery, error: BaseException | None = None) -> None:
    if delivery.done.done():
        return
    if error is None:
        delivery.done.set_result(None)
    else:
        delivery.done.set_exception(error)
