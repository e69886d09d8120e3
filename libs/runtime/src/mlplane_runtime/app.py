"""The FastAPI application every mlplane service serves, with its operational routes.

`create_service_app` gives each service the same outside: `/healthz`, `/readyz`,
`/metrics`, problem+json errors, a server span per request continuing the caller's
`traceparent`, one JSON access-log line per request, and the same doors: `HEAD` on
every `GET` route, a body limit per route (`body_limit`), no control characters
in paths and query strings (`request_text`). The service adds its own
routers and lifespan; nothing here connects to anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.responses import Response
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from mlplane_runtime.body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from mlplane_runtime.head_requests import HeadAsGetMiddleware
from mlplane_runtime.health import DEFAULT_CHECK_TIMEOUT_S, ReadinessCheck, health_router
from mlplane_runtime.hot_path import HotPathMiddleware, MountedHotRoute
from mlplane_runtime.problem import install_problem_handlers
from mlplane_runtime.request_text import ControlCharacterMiddleware

# Imported for its side effect: the mlplane_* metrics exist in the default registry
# from the start, so /metrics shows them before the first event.
from mlplane_runtime.telemetry import metrics as _metrics  # noqa: F401

# Probes and scrapes arrive every few seconds: no span for them, access log at DEBUG.
OPERATIONAL_PATHS = ("/healthz", "/readyz", "/metrics")

_access_log = logging.getLogger("mlplane.access")


def _runtime_version() -> str:
    try:
        return package_version("mlplane-runtime")
    except PackageNotFoundError:
        return "0.0.0"


def metrics_router() -> APIRouter:
    """Route `GET /metrics`: the default Prometheus registry, in the format `Accept` asks.

    Without an `Accept` header the answer is the classic text format (0.0.4).
    """
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(REGISTRY), headers={"Content-Type": content_type})

    return router


def create_service_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    readiness: Mapping[str, Callable[[], Awaitable[bool]]] | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
    version: str | None = None,
    readiness_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    hot_routes: Sequence[MountedHotRoute] = (),
) -> FastAPI:
    """A FastAPI app for service `name` with health, metrics, errors, tracing and access logs.

    `readiness` names async checks run by `/readyz`; they are copied into
    `app.state.readiness_checks`, a dict the `lifespan` may extend once it has
    built the engine or transport a check needs. `version` defaults to the
    runtime's. `max_body_bytes` is the body limit of every route that declares
    none (`body_limit.max_body_bytes`). `hot_routes` are answered in front of
    everything else when they can (`hot_path`).
    Building the app connects to nothing and raises nothing.
    """
    app = FastAPI(
        title=f"mlplane {name}",
        version=version or _runtime_version(),
        lifespan=lifespan,
    )
    app.state.service_name = name
    checks: dict[str, ReadinessCheck] = dict(readiness or {})
    app.state.readiness_checks = checks

    app.include_router(health_router(checks, check_timeout_s=readiness_timeout_s))
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)

    # Inside the problem middleware: their refusals are problems like any other.
    app.add_middleware(BodyLimitMiddleware, default_limit=max_body_bytes)
    app.add_middleware(ControlCharacterMiddleware)
    app.add_middleware(HeadAsGetMiddleware, routes=app.router.routes)
    install_problem_handlers(app)
    # Added after the problem middleware, so it wraps it and logs the 500 it answers;
    # the instrumentation wraps both, so the access line carries the request's trace id.
    app.add_middleware(AccessLogMiddleware, service=name)
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=",".join(f"{path}$" for path in OPERATIONAL_PATHS),
        exclude_spans=["receive", "send"],
        # Spans only: request metrics come from Prometheus, and OpenTelemetry's own
        # histograms cost CPU on every request for figures nobody exports.
        meter_provider=NoOpMeterProvider(),
    )
    if hot_routes:
        _put_in_front(app, HotPathMiddleware, routes=hot_routes)
    return app


def _put_in_front(app: FastAPI, middleware: Callable[..., ASGIApp], **options: Any) -> None:
    """Wrap `middleware` around the whole stack, the tracing middleware included.

    `add_middleware` would put it inside the instrumentation, which wraps the stack
    Starlette builds on the first request; this wraps what that build returns.
    """
    build = app.build_middleware_stack

    def build_with_front() -> ASGIApp:
        return middleware(build(), **options)

    app.build_middleware_stack = build_with_front  # type: ignore[method-assign]


class AccessLogMiddleware:
    """Logs one line per HTTP request: method, path, status and duration in ms.

    The path is logged without its query string, which may carry tokens.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            self._log(scope, status, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, elapsed_s: float) -> None:
        method = str(scope.get("method", ""))
        path = str(scope.get("path", ""))
        level = logging.DEBUG if path.endswith(OPERATIONAL_PATHS) else logging.INFO
        fields: dict[str, Any] = {
            "http_method": method,
            "http_path": path,
            "http_status": status,
            "duration_ms": round(elapsed_s * 1000, 3),
            "service_name": self.service,
        }
        _access_log.log(level, "%s %s %s", method, path, status, extra=fields)
