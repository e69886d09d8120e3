"""Dead letters on RabbitMQ: the headers a dead letter carries, and reading a DLQ.

A dead letter is a copy of the failed delivery, published to `mlplane.dlx` with
the reason, the try count, when it was parked and the routing key it was first
published with. Reading the DLQ uses basic.get without ack on a channel of its
own: the fetched messages stay unacknowledged, and closing that channel puts them
back in their original places (the DLQ is a classic queue), so listing never
removes or reorders anything. A crash while listing closes the channel too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity
from mlplane_contracts.topology import (
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    dead_letter_queue_name,
)

from mlplane_runtime.bus.base import DeadLetter
from mlplane_runtime.telemetry.metrics import DEAD_LETTER_DEPTH

DEAD_LETTER_ID_HEADER = "x-mlplane-dead-letter-id"
"""Names one stay in a DLQ: the event's own id repeats when it is parked twice."""

# Headers RabbitMQ adds when it dead-letters (our delay queues expire into the
# service queue); they describe a past hop and are not copied onto new messages.
_BROKER_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)
_DEAD_LETTER_HEADERS = frozenset(
    {ERROR_HEADER, ATTEMPTS_HEADER, DEAD_LETTERED_AT_HEADER, DEAD_LETTER_ID_HEADER}
)


def _carried(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if k not in _BROKER_DEATH_HEADERS}


def retry_headers(headers: Mapping[str, Any], *, attempt: int, routing_key: str) -> dict[str, Any]:
    """Headers for the copy that waits for try `attempt` in a delay queue."""
    return {
        **_carried(headers),
        ATTEMPT_HEADER: attempt,
        ORIGINAL_ROUTING_KEY_HEADER: routing_key,
    }


def dead_letter_headers(
    headers: Mapping[str, Any], *, reason: str, attempts: int, routing_key: str
) -> dict[str, Any]:
    """Headers for the copy parked in a DLQ: why, after how many tries, when, from where."""
    return {
        **_carried(headers),
        ERROR_HEADER: reason,
        ATTEMPTS_HEADER: attempts,
        DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
        ORIGINAL_ROUTING_KEY_HEADER: routing_key,
        DEAD_LETTER_ID_HEADER: uuid.uuid4().hex,
    }


def replay_headers(headers: Mapping[str, Any], delivered_with: str) -> dict[str, Any]:
    """Headers for a dead letter sent back to its queue: first try again, no verdict.

    `delivered_with` is the routing key the dead letter reached the DLQ with, the
    fallback when it carries no original routing key.
    """
    carried = {k: v for k, v in _carried(headers).items() if k not in _DEAD_LETTER_HEADERS}
    carried[ATTEMPT_HEADER] = 1
    carried[ORIGINAL_ROUTING_KEY_HEADER] = str(
        headers.get(ORIGINAL_ROUTING_KEY_HEADER) or delivered_with
    )
    return carried


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _broker_reason(headers: Mapping[str, Any]) -> str:
    # A message RabbitMQ itself dead-lettered (an operator's policy, a delivery
    # limit) has no error header; its x-death entry says why.
    reason = headers.get("x-first-death-reason")
    return f"dead-lettered by RabbitMQ: {reason}" if reason else "unknown"


def dead_letter_id(message: AbstractIncomingMessage) -> str:
    """The id `replay` takes for this dead letter (its message id when we did not park it)."""
    headers = message.headers or {}
    return str(headers.get(DEAD_LETTER_ID_HEADER) or message.message_id or "")


def as_dead_letter(service: str, message: AbstractIncomingMessage) -> DeadLetter:
    """A DLQ message as the `DeadLetter` the runtime and the HTTP API show."""
    headers = dict(message.headers or {})
    return DeadLetter(
        dead_letter_id=dead_letter_id(message),
        service=service,
        routing_key=str(headers.get(ORIGINAL_ROUTING_KEY_HEADER) or message.routing_key or ""),
        message_id=message.message_id,
        reason=str(headers.get(ERROR_HEADER) or _broker_reason(headers)),
        attempts=_as_int(headers.get(ATTEMPTS_HEADER), _as_int(headers.get(ATTEMPT_HEADER), 1)),
        dead_lettered_at=_as_datetime(headers.get(DEAD_LETTERED_AT_HEADER)),
        headers=headers,
        body=message.body,
    )


async def _fetch_unacked(queue: AbstractQueue, limit: int | None) -> list[AbstractIncomingMessage]:
    fetched: list[AbstractIncomingMessage] = []
    while limit is None or len(fetched) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        fetched.append(message)
    return fetched


@contextlib.asynccontextmanager
async def _borrowed_messages(
    connection: AbstractConnection, service: str, limit: int | None
) -> AsyncIterator[list[AbstractIncomingMessage]]:
    """Up to `limit` messages (all when None) from the head of the service's DLQ.

    They stay unacknowledged on a channel of their own; those not acked in the
    block go back in place when it closes. An undeclared DLQ yields nothing.
    """
    # FastStream keeps its channels for its publishers and subscribers; basic.get
    # on a channel we close afterwards needs aio-pika's channel directly.
    channel = await connection.channel(publisher_confirms=False)
    try:
        try:
            queue = await channel.get_queue(dead_letter_queue_name(service), ensure=True)
        except ChannelNotFoundEntity:
            yield []
            return
        # The passive declare counted the DLQ before anything was fetched.
        _sample_depth(service, queue)
        yield await _fetch_unacked(queue, limit)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def list_dead_letters(
    connection: AbstractConnection, service: str, limit: int
) -> list[DeadLetter]:
    """The first `limit` dead letters of the service, oldest first, left in place.

    Raises aio-pika's connection and channel errors.
    """
    async with _borrowed_messages(connection, service, limit) as messages:
        return [as_dead_letter(service, m) for m in messages]


def _sample_depth(service: str, queue: AbstractQueue) -> None:
    result = queue.declaration_result
    DEAD_LETTER_DEPTH.labels(service=service).set(result.message_count or 0)


async def replay_dead_letters(
    connection: AbstractConnection,
    service: str,
    dead_letter_ids: Sequence[str] | None,
    send_back: Callable[[Sequence[AbstractIncomingMessage]], Awaitable[None]],
) -> int:
    """Hand the chosen dead letters (all when `dead_letter_ids` is None) to `send_back`;
    once it returns, remove them from the DLQ. Returns how many.

    When `send_back` raises, nothing is removed and its error propagates.
    """
    wanted = None if dead_letter_ids is None else set(dead_letter_ids)
    async with _borrowed_messages(connection, service, None) as messages:
        chosen = [m for m in messages if wanted is None or dead_letter_id(m) in wanted]
        if chosen:
            await send_back(chosen)
        for message in chosen:
            await message.ack()
        DEAD_LETTER_DEPTH.labels(service=service).set(len(messages) - len(chosen))
    return len(chosen)
