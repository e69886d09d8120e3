"""A delivery connects to the address its sink check resolved, never to a second lookup's."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request, Response
from mlplane_gateway.subscriptions.delivery import DueDelivery, Outcome, deliver
from mlplane_gateway.subscriptions.domain import SinkTarget, Subscription, parse_sink_url
from mlplane_testing.http_server import serve

from .conftest import MakeEvent


async def test_a_delivery_connects_to_the_checked_address_with_the_hosts_name(
    make_event: MakeEvent, team: str
) -> None:
    hosts: list[str] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        hosts.append(request.headers["host"])
        return Response(status_code=204)

    async with serve(app) as url:
        port = httpx.URL(url).port
        # `.invalid` never resolves: only a delivery to the checked address arrives.
        sink = f"http://sink.invalid:{port}/hook"

        async def checked(candidate: str) -> SinkTarget:
            target = parse_sink_url(candidate)
            return SinkTarget(target.url, target.scheme, target.host, ("127.0.0.1",))

        subscription = Subscription(
            id="sub-1",
            team=team,
            sink_url=sink,
            types=(),
            subject_prefix=None,
            secret="s" * 32,
            created_at=datetime.now(UTC),
        )
        delivery = DueDelivery(1, 1, subscription, make_event())
        async with httpx.AsyncClient(trust_env=False) as client:
            result = await deliver(client, delivery, timeout_s=5, check_sink=checked)
    assert result.outcome is Outcome.DELIVERED, result.error
    assert hosts == [f"sink.invalid:{port}"]
