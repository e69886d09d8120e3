"""Hot routes: answered in front of the whole app when their handler can, everything
else passed on to the full app untouched, with the span and access-log line the full
app would give."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.app import create_service_app
from mlplane_runtime.hot_path import HotAnswer, HotRequest, HotRoute, MountedHotRoute
from mlplane_runtime.telemetry.metrics import HOT_ANSWERS
from opentelemetry import trace
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
    assert span.attributes["mlplane.service"] == "svc"
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


# -- writes -----------------------------------------------------------------------------


class Writer:
    """Creates `name` from a JSON body: answers 201 unless the body says `"pass": true`
    (then passes on, or raises for `"raise": true`). Remembers bodies and the span that
    was current while it ran."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.current_spans: list[trace.Span] = []

    async def __call__(self, request: HotRequest) -> HotAnswer | None:
        self.bodies.append(request.body)
        self.current_spans.append(trace.get_current_span())
        asked = json.loads(request.body)
        if asked.get("raise"):
            raise RuntimeError("the database fell over")
        if asked.get("pass"):
            return None
        return HotAnswer(
            json.dumps({"created": request.params["name"]}).encode(),
            headers=((b"location", b"things/1"),),
            status=201,
        )


def _full_writes() -> APIRouter:
    router = APIRouter()

    @router.post("/things/{name}", status_code=202)
    async def full(name: str, request: Request) -> dict[str, Any]:
        return {"full": name, "body": (await request.body()).decode()}

    return router


@pytest.fixture
def writer() -> Writer:
    return Writer()


@pytest.fixture
async def writes(writer: Writer) -> AsyncIterator[httpx.AsyncClient]:
    route = HotRoute("/things/{name}", writer, method="POST", max_body_bytes=100)
    mounted = MountedHotRoute("svc", "", route)
    app = create_service_app("svc", routers=[_full_writes()], hot_routes=[mounted])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        yield http


async def test_a_hot_write_answers_with_its_status_and_headers(
    writes: httpx.AsyncClient, writer: Writer
) -> None:
    answer = await writes.post("/things/fraud", json={"size": 1})
    assert answer.status_code == 201
    assert answer.json() == {"created": "fraud"}
    assert answer.headers["location"] == "things/1"
    assert json.loads(writer.bodies[-1]) == {"size": 1}


@pytest.mark.parametrize("asked", [{"pass": True}, {"raise": True}])
async def test_a_write_passed_on_reaches_the_full_app_with_its_body(
    writes: httpx.AsyncClient, writer: Writer, asked: dict[str, bool]
) -> None:
    answer = await writes.post("/things/fraud", json=asked)
    assert answer.status_code == 202
    assert json.loads(answer.json()["body"]) == asked
    assert len(writer.bodies) == 1


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"size": 1}', {"content-type": "text/plain"}),  # not JSON
        (b'{"size": "' + b"x" * 200 + b'"}', {"content-type": "application/json"}),  # too long
    ],
)
async def test_a_body_the_hot_route_does_not_take_is_never_read_by_it(
    writes: httpx.AsyncClient, writer: Writer, content: bytes, headers: dict[str, str]
) -> None:
    answer = await writes.post("/things/fraud", content=content, headers=headers)
    assert writer.bodies == []
    assert answer.status_code == 202
    assert answer.json()["body"] == content.decode()


async def test_a_chunked_body_goes_to_the_full_app(
    writes: httpx.AsyncClient, writer: Writer
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"size":'
        yield b" 1}"

    answer = await writes.post(
        "/things/fraud", content=chunks(), headers={"content-type": "application/json"}
    )
    assert writer.bodies == []
    assert answer.json()["body"] == '{"size": 1}'


async def test_a_hot_write_runs_in_its_server_span_and_a_passed_on_one_nests_the_full_app(
    writes: httpx.AsyncClient, writer: Writer, spans: InMemorySpanExporter
) -> None:
    await writes.post("/things/fraud", json={}, headers={"traceparent": TRACEPARENT})
    (hot,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert hot.name == "POST /things/{name}"
    assert writer.current_spans[-1].get_span_context() == hot.context
    assert hot.context is not None
    assert f"{hot.context.trace_id:032x}" == TRACE_ID
    assert hot.attributes is not None
    assert hot.attributes["http.response.status_code"] == 201

    spans.clear()
    await writes.post("/things/fraud", json={"pass": True}, headers={"traceparent": TRACEPARENT})
    finished = spans.get_finished_spans()
    (outer,) = [s for s in finished if s.attributes and s.attributes.get("mlplane.hot_path")]
    assert outer.kind is SpanKind.SERVER
    assert outer.attributes is not None
    assert outer.attributes["mlplane.hot_path.passed_on"] is True
    assert outer.context is not None
    # The full app's own span (internal, as it runs inside a server span) is a child.
    children = [s for s in finished if s.parent and s.parent.span_id == outer.context.span_id]
    assert children, "the full app's span is not in the hot span"
