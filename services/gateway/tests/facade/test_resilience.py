"""Unreachable, failing and slow services: 502, 504, retries, and the breaker.

The services here are tiny local apps served by uvicorn that count what reaches them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from mlplane_gateway.facade.upstreams import UpstreamLimits
from mlplane_testing.http_server import free_port

from .conftest import Gateway, Serve

READER = {"Authorization": "Bearer reader-token"}
WRITER = {"Authorization": "Bearer writer-token"}
StartGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


@dataclass
class CountingService:
    """Answers `status` (plain text) to everything under /svc, and counts the calls."""

    status: int = 503
    calls: int = 0
    delay_s: float = 0.0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/svc/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def anything(path: str, request: Request) -> Response:
            self.calls += 1
            await request.body()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            headers = {"Location": "/svc/things/1"} if path == "create" else {}
            return Response(
                f"upstream says {self.status} <traceback here>",
                status_code=self.status,
                media_type="text/plain",
                headers=headers,
            )

        return app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_unreachable_service_is_a_502_then_its_breaker_opens(
    start_gateway: StartGateway,
) -> None:
    limits = UpstreamLimits(retries=0, failure_threshold=2, cool_down_s=30)
    url = f"http://127.0.0.1:{free_port()}/scanner"
    async with (
        start_gateway({"scanner": url}, limits) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        for _ in range(2):
            answer = await client.get("/v1/scanner/policies", headers=READER)
            assert answer.status_code == 502
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["service"] == "scanner"
            assert problem["instance"] == "/v1/scanner/policies"
            assert problem["type"].endswith("/upstream-unreachable")
        fast = await client.get("/v1/scanner/policies", headers=READER)
        assert fast.status_code == 503
        assert fast.json()["service"] == "scanner"
        assert fast.json()["type"].endswith("/upstream-unavailable")
        assert 1 <= int(fast.headers["retry-after"]) <= 30


async def test_the_breaker_half_opens_for_one_trial_and_closes_on_success(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    service = CountingService(status=503)
    clock = Clock()
    limits = UpstreamLimits(retries=0, failure_threshold=2, cool_down_s=10, first_cool_down_s=10)
    async with (
        http_server(service.app()) as url,
        start_gateway({"drift": f"{url}/svc"}, limits, clock) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        for _ in range(2):
            assert (await client.get("/v1/drift/x", headers=READER)).status_code == 503
        assert service.calls == 2
        refused = await client.get("/v1/drift/x", headers=READER)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert service.calls == 2  # failed fast

        clock.now += 10  # cooled down: one trial, which fails: open again
        assert (await client.get("/v1/drift/x", headers=READER)).status_code == 503
        assert service.calls == 3
        assert (await client.get("/v1/drift/x", headers=READER)).status_code == 503
        assert service.calls == 3

        clock.now += 10
        service.status = 200
        assert (await client.get("/v1/drift/x", headers=READER)).status_code == 200
        for _ in range(3):  # closed again: every call goes through
            assert (await client.get("/v1/drift/x", headers=READER)).status_code == 200
        assert service.calls == 7


@pytest.mark.parametrize("status", [500, 501, 400, 404, 422])
async def test_answers_a_caller_can_provoke_never_open_the_breaker(
    start_gateway: StartGateway, http_server: Serve, status: int
) -> None:
    # A crafted request (`?name_prefix=a%00b`, now refused at every door) made the
    # registry answer 500: counted as failures, two of them switched the registry off
    # for every team. The service here answers `status` to whatever it is asked.
    service = CountingService(status=status)
    limits = UpstreamLimits(retries=0, failure_threshold=2, cool_down_s=30)
    async with (
        http_server(service.app()) as url,
        start_gateway({"registry": f"{url}/svc"}, limits) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        for _ in range(5):
            answer = await client.get("/v1/registry/versions?name_prefix=crafted", headers=READER)
            assert answer.status_code == status
        service.status = 200
        assert (await client.get("/v1/registry/versions", headers=READER)).status_code == 200
        assert service.calls == 6


async def test_a_service_back_after_a_blip_is_tried_again_within_the_first_cool_down(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    service = CountingService(status=503)
    limits = UpstreamLimits(retries=0, failure_threshold=2, cool_down_s=30, first_cool_down_s=0.3)
    async with (
        http_server(service.app()) as url,
        start_gateway({"drift": f"{url}/svc"}, limits) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        for _ in range(2):
            assert (await client.get("/v1/drift/x", headers=READER)).status_code == 503
        refused = await client.get("/v1/drift/x", headers=READER)
        assert refused.json()["type"].endswith("/upstream-unavailable")
        assert refused.headers["retry-after"] == "1"
        service.status = 200
        await asyncio.sleep(0.4)
        assert (await client.get("/v1/drift/x", headers=READER)).status_code == 200


async def test_the_breaker_logs_one_line_when_it_opens_and_one_when_it_closes(
    start_gateway: StartGateway, http_server: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    service = CountingService(status=503)
    clock = Clock()
    limits = UpstreamLimits(retries=0, failure_threshold=2, cool_down_s=10, first_cool_down_s=1)
    caplog.set_level(logging.INFO, logger="mlplane.gateway.facade")
    async with (
        http_server(service.app()) as url,
        start_gateway({"drift": f"{url}/svc"}, limits, clock) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        for _ in range(4):
            await client.get("/v1/drift/x", headers=READER)
        clock.now += 1  # a failed trial opens it again: no second line
        await client.get("/v1/drift/x", headers=READER)
        clock.now += 2
        service.status = 200
        await client.get("/v1/drift/x", headers=READER)
        await client.get("/v1/drift/x", headers=READER)
    lines = [r for r in caplog.records if r.name == "mlplane.gateway.facade"]
    assert [getattr(r, "breaker", None) for r in lines] == ["open", "closed"]
    assert all(getattr(r, "service", None) == "drift" for r in lines)
    assert all("Bearer" not in r.getMessage() for r in lines)


async def test_gets_are_retried_and_posts_are_not(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    service = CountingService(status=503)
    limits = UpstreamLimits(retries=2, retry_base_delay_s=0.01, failure_threshold=100)
    async with (
        http_server(service.app()) as url,
        start_gateway({"scanner": f"{url}/svc"}, limits) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        answer = await client.get("/v1/scanner/things", headers=READER)
        assert answer.status_code == 503
        assert service.calls == 3
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        assert "traceback" not in problem["detail"]  # a 5xx body is not echoed
        assert problem["service"] == "scanner"

        service.calls = 0
        posted = await client.post("/v1/scanner/things", json={"a": 1}, headers=WRITER)
        assert posted.status_code == 503
        assert service.calls == 1

        service.calls = 0
        keyed = await client.post(
            "/v1/scanner/things", json={"a": 1}, headers={**WRITER, "Idempotency-Key": "k1"}
        )
        assert keyed.status_code == 503
        assert service.calls == 3

        service.calls = 0
        service.status = 500  # not a retryable status
        assert (await client.get("/v1/scanner/things", headers=READER)).status_code == 500
        assert service.calls == 1


async def test_a_4xx_text_body_becomes_a_problem_with_its_status(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    service = CountingService(status=409)
    async with (
        http_server(service.app()) as url,
        start_gateway({"scanner": f"{url}/svc"}) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        answer = await client.put("/v1/scanner/things/1", json={}, headers=WRITER)
        assert answer.status_code == 409
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["instance"] == "/v1/scanner/things/1"


async def test_a_location_into_the_service_points_at_the_gateway(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    service = CountingService(status=201)
    async with (
        http_server(service.app()) as url,
        start_gateway({"scanner": f"{url}/svc"}) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        answer = await client.post("/v1/scanner/create", json={}, headers=WRITER)
        assert answer.status_code == 201
        assert answer.headers["location"] == "/v1/scanner/things/1"
        assert answer.text == "upstream says 201 <traceback here>"


async def test_a_slow_service_is_a_504(start_gateway: StartGateway, http_server: Serve) -> None:
    service = CountingService(status=200, delay_s=2.0)
    limits = UpstreamLimits(timeout_s=0.3, retries=2)
    async with (
        http_server(service.app()) as url,
        start_gateway({"deployer": f"{url}/svc"}, limits) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        answer = await client.get("/v1/deployer/slow", headers=READER)
        assert answer.status_code == 504
        assert answer.json()["type"].endswith("/upstream-timeout")
        assert service.calls == 1  # a timeout is not retried
