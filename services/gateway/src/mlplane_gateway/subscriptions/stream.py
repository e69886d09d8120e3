"""The caller's team's events as server-sent events, resumable (`GET /v1/events/stream`,
in `api`).

Each event is one frame: `id:` its position in the gateway's event log, `event:`
its CloudEvent type, `data:` the structured CloudEvent (JSON, one line). A
client that reconnects with `Last-Event-ID` (browsers' EventSource does it by
itself) gets only the events after that one, so nothing is lost or repeated
across a disconnect. A comment line keeps idle connections open through proxies.
Filters: `type_prefix` (repeatable) and `subject_prefix`, as for subscriptions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from mlplane_runtime.errors import InvalidInput

from mlplane_gateway.subscriptions.domain import EventFilter

KEEPALIVE_S: Final = 15.0
BATCH: Final = 100
MAX_POSITION: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    position: int
    event_id: str
    type: str
    body: bytes
    """The structured CloudEvent, JSON."""


class EventSource(Protocol):
    async def events_after(
        self, position: int, event_filter: EventFilter, limit: int
    ) -> Sequence[StreamedEvent]:
        """Events past `position` that the filter accepts, oldest first, at most `limit`."""
        ...

    async def wait(self, timeout_s: float) -> None:
        """Return when new events may be there, or after at most `timeout_s`."""
        ...


def frame(event: StreamedEvent) -> str:
    """One SSE frame. The body is JSON on one line (no raw newline can split it)."""
    data = event.body.decode("utf-8").replace("\r", "").replace("\n", "")
    return f"id: {event.position}\nevent: {event.type}\ndata: {data}\n\n"


async def sse_frames(
    source: EventSource,
    event_filter: EventFilter,
    last_id: int,
    *,
    keepalive_s: float = KEEPALIVE_S,
    batch: int = BATCH,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[str]:
    """Frames of the events after `last_id`, then of each new one, forever.

    A `: keep-alive` comment is sent when nothing was sent for `keepalive_s`.
    The stream ends when its consumer stops iterating (the client went away).
    """
    now = clock or time.monotonic
    position = last_id
    last_sent = now()
    yield "retry: 2000\n\n"
    while True:
        events = await source.events_after(position, event_filter, batch)
        for event in events:
            position = event.position
            yield frame(event)
        if events:
            last_sent = now()
            if len(events) == batch:
                continue
        idle = now() - last_sent
        if idle >= keepalive_s:
            yield ": keep-alive\n\n"
            last_sent = now()
            idle = 0.0
        await source.wait(keepalive_s - idle)


def parse_last_event_id(value: str | None) -> int:
    """The position to resume after; 0 (from the start) when absent."""
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    if not text.isdigit() or int(text) > MAX_POSITION:
        raise InvalidInput("Last-Event-ID must be an id this stream sent (a whole number)")
    return int(text)
