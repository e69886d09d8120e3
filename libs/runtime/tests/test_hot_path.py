"""Hot routes: answered in front of the whole app when their handler can, everything
else passed on to the full app untouched, with the span and access-log line the full
app would give."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.app import create_service_app
from mlplane_runtime.hot_path import HotAnswer, HotRequest, HotRoute, MountedHotRoute
from mlplane_runtime.telemetry.metrics import HOT_ANSWERS
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from .log_capture import captured_json_logs
from .otel_fixtures import fresh_span_exporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Handler:
    """Answers `hot:<name>` for names it knows, None (pass on) for others; raises for
    `boom`. Remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[HotRequest] = []

    async def __call__(self, request: HotRequest) -> HotAnswer | None:
        self.asked.append(request)
        name = request.params["name"]
        if name == "boom":
            raise RuntimeError("the cache fell over")
        if name.startswith("cold"):
            return None
        return HotAnswer(f'{{"hot":"{name}"}}'.encode(), headers=((b"etag", b'"e1"'),))


def _full_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/models/{name}")
    async def full(name: str, request: Request) -> dict[str, str]:
        return {"full": name, "query": request.url.query}

    @router.post("/models/{name}")
    async def post(name: str) -> dict[str, str]:
        return {"posted": name}

    return router


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
async def client(handler: Handler) -> AsyncIterator[httpx.AsyncClient]:
    route = HotRoute("/models/{name}", handler, patterns={"name": DNS_LABEL_PATTERN})
    app = create_service_app(
        "svc", routers=[_full_routes()], hot_routes=[MountedHotRoute("svc", "", route)]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        yield http


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_span_exporter()


def _answered() -> float:
    return HOT_ANSWERS.labels("svc", "/models/{name}")._value.get()


async def test_a_hot_answer_is_sent_as_the_handler_gives_it(
    client: httpx.AsyncClient, handler: Handler
) -> None:
    before = _answered()
    answer = await client.get("/models/fraud")
    assert answer.status_code == 200
    assert answer.json() == {"hot": "fraud"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["etag"] == '"e1"'
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert handler.asked[-1].params == {"name": "fraud"}
    assert _answered() == before + 1


async def test_what_the_handler_passes_on_reaches_the_full_app(
    client: httpx.AsyncClient, handler: Handler
) -> None:
    answer = await client.get("/models/cold-one")
    assert answer.json() == {"full": "cold-one", "query": ""}
    assert len(handler.asked) == 1


async def test_a_failing_handler_is_passed_on_and_logged(
    client: httpx.AsyncClient,
) -> None:
    with captured_json_logs(level="INFO") as logs:
        answer = await client.get("/models/boom")
    assert answer.json() == {"full": "boom", "query": ""}
    (warning,) = logs.by_logger("mlplane.hot_path")
    assert "the cache fell over" in warning["message"]


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("GET", "/models/fraud?x=1", {}),  # a query string the route does not take
        ("GET", "/models/Not_A_Label", {}),  # outside the parameter's pattern
        ("GET", "/models/fraud/more", {}),  # a longer path
        ("POST", "/models/fraud", {}),
        ("HEAD", "/models/fraud", {}),
        ("GET", "/models/fraud", {"content": b"a body"}),
    ],
)
async def test_requests_a_hot_route_does_not_take_never_reach_its_handler(
    client: httpx.AsyncClient,
    handler: Handler,
    method: str,
    path: str,
    extra: dict[str, bytes],
) -> None:
    answer = await client.request(method, path, **extra)
    assert handler.asked == []
    assert "hot" not in answer.text


async def test_a_hot_answer_has_a_server_span_continuing_the_callers_trace(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    with captured_json_logs(level="INFO") as logs:
        await client.get("/models/fraud", headers={"traceparent": TRACEPARENT})
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "GET /models/{name}"
    assert span.context is not None
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["mlplane.hot_path"] is True
    (access,) = logs.by_logger("mlplane.access")
    assert access["http_path"] == "/models/fraud"
    assert access["http_status"] == 200
    assert access["trace_id"] == TRACE_ID


async def test_without_a_traceparent_a_hot_answer_starts_its_own_trace(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/models/fraud")
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.parent is None
