"""One sink's backlog never holds back another sink's deliveries: a team's many
subscriptions to a slow receiver, another team's one subscription to a fast one,
both served on 127.0.0.1 (allowlisted), the ledger in the real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Response
from mlplane_gateway.subscriptions.delivery import Dispatcher
from mlplane_gateway.subscriptions.domain import RetrySchedule, parse_allowlist
from mlplane_gateway.subscriptions.postgres import PostgresDeliveries
from mlplane_gateway.subscriptions.sinks import SinkChecker
from mlplane_gateway.subscriptions.tables import SubscriptionTables
from mlplane_runtime.db import Database
from mlplane_testing.http_server import serve

from .conftest import MakeEvent
from .test_delivery_postgres import add_subscription, record

SLOW_S = 2.0
SLOW_SUBSCRIPTIONS = 20
SLOW_EVENTS = 3
FAST_BOUND_S = 3.0
"""Generous: the fast delivery needs milliseconds; behind the slow backlog it would
wait about SLOW_SUBSCRIPTIONS * SLOW_EVENTS * SLOW_S / CONCURRENCY = 30 s."""
CONCURRENCY = 4


@dataclass
class Receiver:
    """Takes every request after `delay_s`; counts them and the most served at once."""

    delay_s: float = 0.0
    received: int = 0
    busy: int = 0
    most_busy: int = 0
    arrivals: list[float] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook() -> Response:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.busy -= 1
            self.received += 1
            self.arrivals.append(time.monotonic())
            return Response(status_code=204)

        return app


@pytest.fixture
def checker() -> SinkChecker:
    return SinkChecker(parse_allowlist(["127.0.0.0/8"]))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        yield client


async def test_a_slow_sink_backlog_does_not_delay_another_teams_delivery(
    database: Database,
    tables: SubscriptionTables,
    checker: SinkChecker,
    make_event: MakeEvent,
    client: httpx.AsyncClient,
) -> None:
    slow, fast = Receiver(delay_s=SLOW_S), Receiver()
    team_a, team_b = f"team-a-{uuid4().hex[:8]}", f"team-b-{uuid4().hex[:8]}"
    async with serve(slow.app()) as slow_url, serve(fast.app()) as fast_url:
        for _ in range(SLOW_SUBSCRIPTIONS):
            await add_subscription(database, tables, team_a, f"{slow_url}/hook", checker)
        await add_subscription(database, tables, team_b, f"{fast_url}/hook", checker)
        # Team a's backlog is due first: recorded before, in transactions of their own.
        for _ in range(SLOW_EVENTS):
            await record(database, tables, make_event(of_team=team_a))
        await record(database, tables, make_event(of_team=team_b))

        # The default per-sink concurrency (2) is what is under test.
        dispatcher = Dispatcher(
            PostgresDeliveries(database, tables),
            client,
            check_sink=checker,
            schedule=RetrySchedule(3, base_delay_s=0.05, max_delay_s=0.2),
            concurrency=CONCURRENCY,
            timeout_s=SLOW_S * 2,
            lease_s=30,
            poll_s=0.05,
        )
        stop = asyncio.Event()
        started = time.monotonic()
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            async with asyncio.timeout(FAST_BOUND_S):
                while not fast.received:  # noqa: ASYNC110 (the receiver counts)
                    await asyncio.sleep(0.02)
            fast_after_s = time.monotonic() - started
            slow_done_then = slow.received
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=SLOW_S * 2 + 5)

    assert fast_after_s < FAST_BOUND_S
    # The backlog was far from drained: the fast delivery did not wait for it.
    assert slow_done_then < SLOW_SUBSCRIPTIONS * SLOW_EVENTS / 4
    # The slow sink never had more than its share of the dispatcher.
    assert slow.most_busy <= 2
