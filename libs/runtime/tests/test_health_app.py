"""The service app: health and readiness probes, /metrics, routers, lifespan, access log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from uuid import uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from mlplane_runtime.app import create_service_app
from mlplane_runtime.health import run_readiness_checks
from mlplane_runtime.problem import PROBLEM_JSON
from mlplane_runtime.telemetry.metrics import EVENTS_DEAD_LETTERED, EVENTS_PUBLISHED

from .log_capture import captured_json_logs

Check = Callable[[], Awaitable[bool]]


async def _ready() -> bool:
    return True


async def _not_ready() -> bool:
    return False


async def _raises() -> bool:
    raise ConnectionRefusedError("connect to 127.0.0.1:5672 refused")


async def _hangs() -> bool:
    await asyncio.Event().wait()
    return True


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


def _app(readiness: Mapping[str, Check] | None = None, **kwargs: object) -> FastAPI:
    return create_service_app(f"svc-{uuid4().hex[:6]}", readiness=readiness, **kwargs)  # type: ignore[arg-type]


class TestHealthz:
    async def test_liveness_answers_200_even_when_dependencies_fail(self) -> None:
        async with _client(_app({"database": _not_ready})) as http:
            response = await http.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestReadyz:
    async def test_ready_when_every_check_passes(self) -> None:
        async with _client(_app({"database": _ready, "broker": _ready})) as http:
            response = await http.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

    async def test_ready_without_checks(self) -> None:
        async with _client(_app()) as http:
            response = await http.get("/readyz")
        assert response.status_code == 200

    @pytest.mark.parametrize(
        ("failing_check", "outcome"),
        [(_not_ready, "failed"), (_raises, "error"), (_hangs, "timeout")],
        ids=["returns-false", "raises", "times-out"],
    )
    async def test_failing_check_answers_503_problem_naming_it(
        self, failing_check: Check, outcome: str
    ) -> None:
        app = _app({"database": _ready, "broker": failing_check}, readiness_timeout_s=0.05)
        async with _client(app) as http:
            response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["status"] == 503
        assert body["failing"] == ["broker"]
        assert "broker" in body["detail"]
        assert "database" not in body["detail"]
        assert body["checks"] == {"database": "ok", "broker": outcome}

    async def test_503_does_not_leak_the_check_error_text(self) -> None:
        async with _client(_app({"broker": _raises})) as http:
            response = await http.get("/readyz")
        assert response.status_code == 503
        assert "5672" not in response.text

    async def test_every_failing_check_is_named(self) -> None:
        app = _app({"database": _not_ready, "broker": _raises, "cache": _ready})
        async with _client(app) as http:
            body = (await http.get("/readyz")).json()
        assert body["failing"] == ["broker", "database"]

    async def test_checks_run_concurrently(self) -> None:
        # Each check waits for the other to start: run one after the other, both
        # would wait for ever and time out.
        started = {"database": asyncio.Event(), "broker": asyncio.Event()}

        def check(me: str, other: str) -> Check:
            async def run() -> bool:
                started[me].set()
                await started[other].wait()
                return True

            return run

        outcomes = await run_readiness_checks(
            {"database": check("database", "broker"), "broker": check("broker", "database")},
            timeout_s=5.0,
        )
        assert outcomes == {"database": "ok", "broker": "ok"}

    async def test_check_added_by_the_lifespan_is_run(self) -> None:
        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            # What a service does once it has built its engine in the lifespan.
            app.state.readiness_checks["database"] = _not_ready
            yield

        app = _app(lifespan=lifespan)
        async with LifespanManager(app), _client(app) as http:
            response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["database"]


class TestMetrics:
    async def test_metrics_expose_the_mlplane_series(self) -> None:
        event_type = f"io.mlplane.test.{uuid4().hex[:8]}.v1"
        EVENTS_PUBLISHED.labels(service="metrics-test", event_type=event_type).inc(3)
        async with _client(_app()) as http:
            response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        labels = f'event_type="{event_type}",service="metrics-test"'
        sample = f"mlplane_events_published_total{{{labels}}} 3.0"
        assert sample in response.text.splitlines()
        for name in ("mlplane_events_consumed_total", "mlplane_handler_duration_seconds"):
            assert f"# TYPE {name}" in response.text

    async def test_metrics_answer_openmetrics_when_asked(self) -> None:
        EVENTS_DEAD_LETTERED.labels(
            service="metrics-test", event_type="io.mlplane.x.v1", reason_kind="poison"
        ).inc()
        async with _client(_app()) as http:
            response = await http.get(
                "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
            )
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.rstrip().endswith("# EOF")


class TestAppFactory:
    async def test_service_routers_are_mounted(self) -> None:
        router = APIRouter()

        @router.get("/models")
        async def models() -> list[str]:
            return ["fraud"]

        app = create_service_app("registry", routers=[router], version="1.2.3")
        async with _client(app) as http:
            response = await http.get("/models")
            openapi = (await http.get("/openapi.json")).json()
        assert response.json() == ["fraud"]
        assert openapi["info"]["version"] == "1.2.3"
        assert openapi["info"]["title"] == "mlplane registry"

    async def test_lifespan_runs_around_serving(self) -> None:
        seen: list[str] = []

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            seen.append("started")
            yield
            seen.append("stopped")

        app = _app(lifespan=lifespan)
        async with LifespanManager(app):
            assert seen == ["started"]
        assert seen == ["started", "stopped"]


class TestAccessLog:
    async def test_each_request_writes_one_json_access_line(self) -> None:
        router = APIRouter()

        @router.get("/models/{name}")
        async def model(name: str) -> dict[str, str]:
            return {"name": name}

        app = create_service_app("registry", routers=[router])
        with captured_json_logs(level="INFO") as logs:
            async with _client(app) as http:
                await http.get("/models/fraud", params={"token": "tok-abc"})
                await http.get("/missing")
        lines = logs.by_logger("mlplane.access")
        assert [
            (line["http_method"], line["http_path"], line["http_status"]) for line in lines
        ] == [
            ("GET", "/models/fraud", 200),
            ("GET", "/missing", 404),
        ]
        assert all(line["duration_ms"] >= 0 for line in lines)
        assert all(line["level"] == "INFO" for line in lines)
        assert "tok-abc" not in logs.text

    async def test_unhandled_error_is_logged_as_500(self) -> None:
        router = APIRouter()

        @router.get("/crash")
        async def crash() -> None:
            raise RuntimeError("boom")

        app = create_service_app("registry", routers=[router])
        with captured_json_logs(level="INFO") as logs:
            async with _client(app) as http:
                response = await http.get("/crash")
        assert response.status_code == 500
        assert [line["http_status"] for line in logs.by_logger("mlplane.access")] == [500]

    async def test_probes_are_logged_at_debug_only(self) -> None:
        with captured_json_logs(level="INFO") as logs:
            async with _client(_app()) as http:
                await http.get("/healthz")
                await http.get("/metrics")
        assert logs.by_logger("mlplane.access") == []
