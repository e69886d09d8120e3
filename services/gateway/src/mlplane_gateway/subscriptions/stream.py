"""`GET /v1/events/stream`: the caller's team's events as server-sent events, resumable.

Each event is one frame: `id:` its position in the gateway's event log, `event:`
its CloudEvent type, `data:` the structured CloudEvent (JSON, one line). A
client that reconnects with `Last-Event-ID` (browsers' EventSource does it by
itself) gets only the events after that one, so nothing is lost or repeated
across a disconnect. A comment line keeps idle connections open through proxies.
Filters: `type_prefix` (repeatable) and `subject_prefix`, as for subscriptions.
"""

# No `from __future__ import annotations`: FastAPI resolves the route's annotations,
# which name the dependency passed in.
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Protocol

from fastapi import APIRouter, Depends, Header, Query
from fastapi.routing import APIRoute
from mlplane_runtime.errors import InvalidInput
from starlette.responses import StreamingResponse

from mlplane_gateway.subscriptions.domain import EventFilter, check_type_prefixes

EVENTS_SUBSCRIBE: Final = "events:subscribe"
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


def stream_router(
    source: EventSource,
    authenticate: Callable[..., Awaitable[Any]],
    require_scope: Callable[[Any, str], Awaitable[None] | None],
    *,
    keepalive_s: float = KEEPALIVE_S,
    route_class: type[APIRoute] = APIRoute,
    openapi_extra: dict[str, Any] | None = None,
) -> APIRouter:
    """`GET /v1/events/stream`, for callers holding `events:subscribe`.

    A caller sees its own team's events; the operator (no team) sees every team's.
    `route_class` renders the route's errors (the gateway's adds its headers);
    `openapi_extra` goes into the operation (the gateway marks its scope there).
    """
    router = APIRouter(tags=["events"], route_class=route_class)
    CallerDep = Annotated[Any, Depends(authenticate)]

    @router.get(
        "/v1/events/stream",
        summary="Platform events as server-sent events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
        openapi_extra=openapi_extra,
    )
    async def stream(
        caller: CallerDep,
        type_prefix: Annotated[list[str] | None, Query(max_length=20)] = None,
        subject_prefix: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        checked = require_scope(caller, EVENTS_SUBSCRIBE)
        if inspect.isawaitable(checked):
            await checked
        event_filter = EventFilter(
            team=caller.team,
            types=check_type_prefixes(type_prefix or ()),
            subject_prefix=subject_prefix,
        )
        frames = sse_frames(
            source, event_filter, parse_last_event_id(last_event_id), keepalive_s=keepalive_s
        )
        return StreamingResponse(
            frames,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
