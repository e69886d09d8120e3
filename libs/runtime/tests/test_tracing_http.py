"""Traces over HTTP: the caller's `traceparent` is continued, logs carry the trace id,
and the tracer provider is installed once and exports by OTLP/HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from mlplane_runtime.app import create_service_app
from mlplane_runtime.telemetry.setup import (
    build_tracer_provider,
    configure_tracing,
    otlp_traces_url,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from .log_capture import captured_json_logs
from .otel_fixtures import fresh_span_exporter, spans_with_trace_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"

_route_log = logging.getLogger("mlplane.test.route")


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_span_exporter()


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/models/{name}")
    async def get_model(name: str) -> dict[str, str]:
        _route_log.info("looking up %s", name)
        return {"name": name}

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("kaboom")

    return router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_service_app("registry", routers=[_routes()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


class TestServerSpans:
    async def test_request_with_traceparent_continues_the_callers_trace(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter
    ) -> None:
        response = await client.get("/models/fraud", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
        server = [
            s for s in spans_with_trace_id(spans, int(TRACE_ID, 16)) if s.kind is SpanKind.SERVER
        ]
        assert len(server) == 1
        assert server[0].parent is not None
        assert server[0].parent.span_id == int(PARENT_SPAN_ID, 16)
        assert server[0].parent.is_remote
        assert server[0].attributes is not None
        assert server[0].attributes.get("http.route") == "/models/{name}"

    async def test_request_without_traceparent_starts_a_new_trace(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter
    ) -> None:
        await client.get("/models/churn")
        server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
        assert len(server) == 1
        assert server[0].parent is None
        assert server[0].context is not None
        assert server[0].context.trace_id != int(TRACE_ID, 16)

    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
    async def test_operational_routes_make_no_span(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter, path: str
    ) -> None:
        trace_id = uuid4().hex
        response = await client.get(
            path, headers={"traceparent": f"00-{trace_id}-{PARENT_SPAN_ID}-01"}
        )
        assert response.status_code == 200
        assert spans_with_trace_id(spans, int(trace_id, 16)) == []

    async def test_unhandled_error_is_recorded_on_the_span_and_its_trace_id_answered(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter
    ) -> None:
        response = await client.get("/crash", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 500
        assert response.json()["trace_id"] == TRACE_ID
        (server,) = [
            s for s in spans_with_trace_id(spans, int(TRACE_ID, 16)) if s.kind is SpanKind.SERVER
        ]
        assert server.status.status_code is StatusCode.ERROR
        assert any(event.name == "exception" for event in server.events)


class TestLogsCarryTheRequestTrace:
    async def test_log_line_in_a_route_carries_the_callers_trace_id(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter
    ) -> None:
        with captured_json_logs(level="INFO") as logs:
            await client.get("/models/fraud", headers={"traceparent": TRACEPARENT})
        (route_line,) = logs.by_logger("mlplane.test.route")
        assert route_line["trace_id"] == TRACE_ID
        assert route_line["span_id"] not in (None, PARENT_SPAN_ID)
        (access_line,) = logs.by_logger("mlplane.access")
        assert access_line["trace_id"] == TRACE_ID

    async def test_authorization_header_never_reaches_the_logs(
        self, client: httpx.AsyncClient, spans: InMemorySpanExporter
    ) -> None:
        token = f"tok-{uuid4().hex}"
        with captured_json_logs(level="DEBUG") as logs:
            await client.get("/models/fraud", headers={"authorization": f"Bearer {token}"})
        assert logs.lines()
        assert token not in logs.text


class TestTracerProvider:
    def test_configure_tracing_keeps_the_provider_already_installed(
        self, spans: InMemorySpanExporter
    ) -> None:
        installed = trace.get_tracer_provider()
        assert isinstance(installed, TracerProvider)
        returned = configure_tracing("registry", "http://127.0.0.1:4318")
        assert returned is installed
        assert trace.get_tracer_provider() is installed

    @pytest.mark.parametrize(
        ("endpoint", "url"),
        [
            ("http://tempo:4318", "http://tempo:4318/v1/traces"),
            ("http://tempo:4318/", "http://tempo:4318/v1/traces"),
            ("http://tempo:4318/v1/traces", "http://tempo:4318/v1/traces"),
        ],
    )
    def test_otlp_traces_url(self, endpoint: str, url: str) -> None:
        assert otlp_traces_url(endpoint) == url

    def test_provider_exports_spans_by_otlp_http_with_the_service_name(
        self, otlp_receiver: OtlpReceiver
    ) -> None:
        provider = build_tracer_provider("registry-otlp-test", otlp_receiver.endpoint)
        try:
            with provider.get_tracer("test").start_as_current_span("exported-span-name"):
                pass
            assert provider.force_flush(timeout_millis=10_000)
        finally:
            provider.shutdown()
        assert otlp_receiver.paths == ["/v1/traces"]
        (body,) = otlp_receiver.bodies
        # OTLP protobuf stores strings as raw bytes: the span and service names are in it.
        assert b"exported-span-name" in body
        assert b"registry-otlp-test" in body

    def test_provider_without_endpoint_creates_spans_but_exports_nothing(self) -> None:
        provider = build_tracer_provider("registry", None)
        try:
            with provider.get_tracer("test").start_as_current_span("local") as span:
                assert span.get_span_context().is_valid
            assert provider.resource.attributes["service.name"] == "registry"
        finally:
            provider.shutdown()


class OtlpReceiver:
    """A minimal OTLP/HTTP collector on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.paths.append(self.path)
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)
