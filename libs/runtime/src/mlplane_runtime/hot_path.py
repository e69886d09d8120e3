"""A lean path in front of a service's app for the few reads that are asked most.

A hot route answers a `GET` only when it can do so at once and correctly, a cache
hit for a caller it has verified; for everything else its handler returns None and
the request goes on, untouched, to the full app (FastAPI, its validation and
problem documents, the access log and the tracing middleware). So nothing here
decides an error, and the full app stays the one definition of every route: a hot
route is an answer it may give sooner.

Why: on a cached read, FastAPI's dependency solving, route matching and the
middleware stack were 55% of a request's CPU, and the registry's own work 4%
(py-spy, `bench/registry.py`). What the full path gives every answer, the hot path
gives too: a server span continuing the caller's `traceparent`, the same access-log
line, and the headers the route would send.

A request with a query string a route does not take, a body, or a path that does
not match a route's parameter patterns is never answered here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

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

    params: Mapping[str, str]
    headers: Sequence[tuple[bytes, bytes]]
    query: bytes

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
    """A 200 answer: `body` as sent, of `content_type`, with `headers` besides."""

    body: bytes
    headers: Sequence[tuple[bytes, bytes]] = ()
    content_type: bytes = b"application/json"


HotHandler = Callable[[HotRequest], Awaitable[HotAnswer | None]]
"""Answers a request it can answer at once, None to pass it to the full app."""


@dataclass(frozen=True, slots=True)
class HotRoute:
    """`GET path` answered by `handler` when it can.

    `path` is written as on the FastAPI route, relative to the service's prefix
    (`/models/{name}/versions/{version}`); `patterns` gives each parameter's regular
    expression (anchors are dropped: the whole segment must match), `[^/]+` when
    not given. `query` says whether a query string may come to the handler (else
    a request with one goes to the full app).
    """

    path: str
    handler: HotHandler
    patterns: Mapping[str, str] = field(default_factory=dict)
    query: bool = False

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
        if scope["type"] == "http" and scope["method"] == "GET" and self._routes:
            answered = await self._try(scope, send)
            if answered:
                return
        await self.app(scope, receive, send)

    async def _try(self, scope: Scope, send: Send) -> bool:
        path: str = scope["path"]
        for compiled in self._routes:
            match = compiled.pattern.fullmatch(path)
            if match is not None:
                break
        else:
            return False
        route = compiled.route
        query: bytes = scope.get("query_string", b"")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if (query and not route.query) or _has_body(headers):
            return False
        started_ns = time.time_ns()
        started = time.perf_counter()
        try:
            answer = await route.handler(HotRequest(match.groupdict(), headers, query))
        except Exception as exc:
            # The full app answers instead, with its own error handling.
            _log.warning("hot route %s failed, passed on: %r", route.path, exc)
            return False
        if answer is None:
            return False
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", answer.content_type),
                    (b"content-length", str(len(answer.body)).encode("ascii")),
                    *answer.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
        compiled.answered.inc()
        self._record(scope, compiled, headers, started_ns, time.perf_counter() - started)
        return True

    def _record(
        self,
        scope: Scope,
        compiled: _Compiled,
        headers: Sequence[tuple[bytes, bytes]],
        started_ns: int,
        elapsed_s: float,
    ) -> None:
        """The span and access-log line the full app would have given the request."""
        parent = None
        if any(key == b"traceparent" for key, _ in headers):
            parent = extract({k.decode("latin-1"): v.decode("latin-1") for k, v in headers})
        path: str = scope["path"]
        span = _tracer.start_span(
            f"GET {compiled.template}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=started_ns,
            attributes={
                "http.request.method": "GET",
                "url.path": path,
                "http.route": compiled.template,
                "http.response.status_code": 200,
                "mlplane.hot_path": True,
            },
        )
        with trace.use_span(span, end_on_exit=True):
            if _access_log.isEnabledFor(logging.INFO):
                _access_log.info(
                    "%s %s %s",
                    "GET",
                    path,
                    200,
                    extra={
                        "http_method": "GET",
                        "http_path": path,
                        "http_status": 200,
                        "duration_ms": round(elapsed_s * 1000, 3),
                        "service_name": compiled.service,
                    },
                )


def _has_body(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() != b"0"):
            return True
    return False
