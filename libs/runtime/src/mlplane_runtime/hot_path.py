"""A lean path in front of a service's app for the few requests that are asked most.

A hot route answers a request only when it can do so at once and correctly (a
cache hit, a read, a write that succeeds, for a caller it has verified); for
everything else its handler returns None and the request goes on, untouched, to
the full app (FastAPI, its validation and problem documents, the access log and
the tracing middleware). So nothing here decides an error, and the full app stays
the one definition of every route: a hot route is an answer it may give sooner.

A `POST` route gets the request's body (a JSON body of a declared length within
the route's limit; anything else goes to the full app unread). Its handler must
change nothing unless it answers: it returns None (or raises) only before it
commits, and once it has committed it answers whatever happens, so the full app,
which then reads the same body again, never repeats a change. Its server span is
current while it runs (the events it emits join the caller's trace); a request it
passes on is served by the full app inside that span.

Why: on a cached read, FastAPI's dependency solving, route matching and the
middleware stack were 55% of a request's CPU, and the registry's own work 4%
(py-spy, `bench/registry.py`). What the full path gives every answer, the hot path
gives too: a server span continuing the caller's `traceparent`, the same access-log
line, and the headers the route would send.

A request with a query string a route does not take, a body, or a path that does
not match a route's parameter patterns is never answered here.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlplane_runtime.body_limit import DEFAULT_MAX_BODY_BYTES
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_runtime.telemetry.metrics import HOT_ANSWERS

_log = logging.getLogger("mlplane.hot_path")
_access_log = logging.getLogger("mlplane.access")
_tracer = trace.get_tracer("mlplane.hot_path")

_IDENTITY = IDENTITY_HEADER.lower().encode("latin-1")
_PARAMETER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class HotRequest:
    """What a hot handler sees of a request: its path parameters, headers and query."""

    path: str
    params: Mapping[str, str]
    headers: Sequence[tuple[bytes, bytes]]
    query: bytes
    body: bytes = b""

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lower-case bytes), None when absent."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    @property
    def identity(self) -> str | None:
        """The gateway's signed identity token, if the request carries one."""
        return self.header(_IDENTITY)


@dataclass(frozen=True, slots=True)
class HotAnswer:
    """An answer: `status`, `body` as sent, of `content_type`, with `headers` besides."""

    body: bytes
    headers: Sequence[tuple[bytes, bytes]] = ()
    content_type: bytes = b"application/json"
    status: int = 200


HotHandler = Callable[[HotRequest], Awaitable[HotAnswer | None]]
"""Answers a request it can answer at once, None to pass it to the full app."""


@dataclass(frozen=True, slots=True)
class HotRoute:
    """`method path` answered by `handler` when it can (`GET` or `POST`).

    `path` is written as on the FastAPI route, relative to the service's prefix
    (`/models/{name}/versions/{version}`); `patterns` gives each parameter's regular
    expression (anchors are dropped: the whole segment must match), `[^/]+` when
    not given. `query` says whether a query string may come to the handler (else
    a request with one goes to the full app). A `POST` body longer than
    `max_body_bytes` goes to the full app unread (which refuses it).
    """

    path: str
    handler: HotHandler
    patterns: Mapping[str, str] = field(default_factory=dict)
    query: bool = False
    method: str = "GET"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def compiled(self, prefix: str) -> re.Pattern[str]:
        """The route's full path, under `prefix`, as one expression (use `fullmatch`)."""
        template = prefix + self.path
        pieces: list[str] = []
        written = 0
        for found in _PARAMETER.finditer(template):
            name = found.group(1)
            pattern = self.patterns.get(name, r"[^/]+").removeprefix("^").removesuffix("$")
            pieces += [re.escape(template[written : found.start()]), f"(?P<{name}>{pattern})"]
            written = found.end()
        pieces.append(re.escape(template[written:]))
        return re.compile("".join(pieces))


@dataclass(frozen=True, slots=True)
class MountedHotRoute:
    """A hot route of `service`, whose routes are mounted under `prefix`."""

    service: str
    prefix: str
    route: HotRoute


@dataclass(frozen=True, slots=True)
class _Compiled:
    pattern: re.Pattern[str]
    service: str
    route: HotRoute
    template: str
    """The route's path with the prefix, as the full app's span names it."""
    answered: Counter


class HotPathMiddleware:
    """The outermost layer of a service's app: `routes` answered here when their handler
    can, everything else passed to `app` unchanged."""

    def __init__(self, app: ASGIApp, routes: Sequence[MountedHotRoute]) -> None:
        self.app = app
        self._routes = tuple(
            _Compiled(
                mounted.route.compiled(mounted.prefix),
                mounted.service,
                mounted.route,
                mounted.prefix + mounted.route.path,
                HOT_ANSWERS.labels(mounted.service, mounted.prefix + mounted.route.path),
            )
            for mounted in routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._match(scope) if scope["type"] == "http" and self._routes else None
        if found is None:
            await self.app(scope, receive, send)
        elif found[0].route.method == "GET":
            if not await self._read(scope, send, *found):
                await self.app(scope, receive, send)
        else:
            await self._write(scope, receive, send, *found)

    def _match(self, scope: Scope) -> tuple[_Compiled, HotRequest] | None:
        """The route `scope` may be answered by, and what its handler would see."""
        method: str = scope["method"]
        path: str = scope["path"]
        for compiled in self._routes:
            if compiled.route.method != method:
                continue
            match = compiled.pattern.fullmatch(path)
            if match is None:
                continue
            query: bytes = scope.get("query_string", b"")
            if query and not compiled.route.query:
                return None
            return compiled, HotRequest(path, match.groupdict(), scope["headers"], query)
        return None

    async def _read(
        self, scope: Scope, send: Send, compiled: _Compiled, request: HotRequest
    ) -> bool:
        """Answer a GET if its handler can (True); its span is made once it has answered."""
        if _has_body(request.headers):
            return False
        started_ns = time.time_ns()
        started = time.perf_counter()
        answer = await self._ask(compiled, request)
        if answer is None:
            return False
        await _send(send, answer)
        compiled.answered.inc()
        span = self._span(scope, compiled, request.headers, started_ns)
        _end(span, answer.status)
        with trace.use_span(span):
            self._log_access(scope, compiled, answer.status, time.perf_counter() - started)
        return True

    async def _write(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        compiled: _Compiled,
        request: HotRequest,
    ) -> None:
        """Answer a POST if its handler can, else pass it on with its body, in its span."""
        length = _json_body_length(request.headers)
        if length is None or length > compiled.route.max_body_bytes:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, length)
        if body is None:
            return  # the client went away
        started = time.perf_counter()
        span = self._span(scope, compiled, request.headers, time.time_ns())
        with trace.use_span(span, end_on_exit=False):
            answer = await self._ask(compiled, dataclasses.replace(request, body=body))
            if answer is not None:
                await _send(send, answer)
                compiled.answered.inc()
                _end(span, answer.status)
                self._log_access(scope, compiled, answer.status, time.perf_counter() - started)
                return
            span.set_attribute("mlplane.hot_path.passed_on", True)
            try:
                await self.app(scope, _replaying(body, receive), send)
            finally:
                span.end()

    async def _ask(self, compiled: _Compiled, request: HotRequest) -> HotAnswer | None:
        try:
            return await compiled.route.handler(request)
        except Exception as exc:
            # The full app answers instead, with its own error handling.
            _log.warning("hot route %s failed, passed on: %r", compiled.route.path, exc)
            return None

    def _span(
        self,
        scope: Scope,
        compiled: _Compiled,
        headers: Sequence[tuple[bytes, bytes]],
        started_ns: int,
    ) -> trace.Span:
        """The server span the full app would have given the request, continuing the
        caller's `traceparent`."""
        parent = None
        if any(key == b"traceparent" for key, _ in headers):
            parent = extract({k.decode("latin-1"): v.decode("latin-1") for k, v in headers})
        method = compiled.route.method
        return _tracer.start_span(
            f"{method} {compiled.template}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=started_ns,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "http.route": compiled.template,
                "mlplane.service": compiled.service,
                "mlplane.hot_path": True,
            },
        )

    def _log_access(self, scope: Scope, compiled: _Compiled, status: int, elapsed_s: float) -> None:
        """The access-log line the full app would have written (within the span)."""
        if not _access_log.isEnabledFor(logging.INFO):
            return
        method, path = compiled.route.method, scope["path"]
        _access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "http_method": method,
                "http_path": path,
                "http_status": status,
                "duration_ms": round(elapsed_s * 1000, 3),
                "service_name": compiled.service,
            },
        )


def _end(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()


async def _send(send: Send, answer: HotAnswer) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", answer.content_type),
                (b"content-length", str(len(answer.body)).encode("ascii")),
                *answer.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


def _json_body_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The declared length of a JSON body; None when it is chunked, undeclared or not JSON."""
    length: int | None = None
    json = False
    for key, value in headers:
        if key == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif key == b"content-type":
            json = value.split(b";", 1)[0].strip().lower() == b"application/json"
        elif key == b"transfer-encoding":
            return None
    return length if json else None


async def _read_body(receive: Receive, length: int) -> bytes | None:
    """The whole body (at most `length` bytes were declared); None if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > length:
            return None  # more than declared: the server's parser does not let this happen
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the full app: the body already read, then whatever comes next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _has_body(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() != b"0"):
            return True
    return False
