"""Helpers for the bus transport tests: unique names, a recording handler, polling.

Tests run concurrently with other engineers' tests on the same RabbitMQ and
PostgreSQL, so every service name, routing key and schema is unique per test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from uuid import uuid4

from mlplane_runtime.bus.base import InboundMessage, OutboundMessage, RetryPolicy

# Small delays keep the tests that do not look at backoff short.
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.05, factor=2.0, max_delay_s=1.0)

WAIT_S = 30.0


def unique_service() -> str:
    return f"bt-{uuid4().hex[:10]}"


def unique_routing_key() -> str:
    return f"test.bus.{uuid4().hex[:10]}.v1"


def message(routing_key: str, body: bytes = b'{"n":1}', **headers: str) -> OutboundMessage:
    return OutboundMessage(
        routing_key=routing_key,
        body=body,
        headers={"ce-source": "/tests", **headers},
        message_id=uuid4().hex,
    )


@dataclass(frozen=True, slots=True)
class Call:
    message: InboundMessage
    at: float  # time.monotonic() when the handler was entered


@dataclass
class Recorder:
    """A delivery handler that records every call, then does what `behaviour` says."""

    behaviour: Callable[[InboundMessage], Awaitable[None]] | None = None
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, message: InboundMessage) -> None:
        self.calls.append(Call(message, time.monotonic()))
        if self.behaviour is not None:
            await self.behaviour(message)

    def ids(self) -> list[str | None]:
        return [c.message.message_id for c in self.calls]

    def of(self, message_id: str) -> list[Call]:
        return [c for c in self.calls if c.message.message_id == message_id]


async def eventually(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    what: str,
    timeout_s: float = WAIT_S,
) -> None:
    """Poll `condition` until true; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


def ids_of(messages: Sequence[OutboundMessage]) -> list[str]:
    return [m.message_id for m in messages]
