"""Deliveries for real: PostgreSQL ledger, a receiver served on 127.0.0.1 (allowlisted),
signed requests, retries while the receiver fails, dead letters when it never recovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.http import decode_http
from mlplane_gateway.subscriptions.delivery import Dispatcher
from mlplane_gateway.subscriptions.domain import (
    ContentMode,
    DeliveryStatus,
    InvalidSink,
    RetrySchedule,
    Subscription,
    parse_allowlist,
)
from mlplane_gateway.subscriptions.postgres import PostgresDeliveries
from mlplane_gateway.subscriptions.signing import SIGNATURE_HEADER, verify_signature
from mlplane_gateway.subscriptions.sinks import SinkChecker
from mlplane_gateway.subscriptions.store import SubscriptionStore
from mlplane_gateway.subscriptions.tables import SubscriptionTables
from mlplane_runtime.db import Database
from mlplane_testing.http_server import serve

from .conftest import MakeEvent

SECRET = "whsec-" + "k" * 40
WAIT_S = 15.0


@dataclass
class Receiver:
    """Answers 500 to the first `failures` requests (all of them if None), then 200."""

    failures: int | None = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.requests.append((dict(request.headers), await request.body()))
            failing = self.failures is None or len(self.requests) <= self.failures
            return Response(status_code=500 if failing else 204)

        return app


@pytest.fixture
def checker() -> SinkChecker:
    return SinkChecker(parse_allowlist(["127.0.0.0/8"]))


async def add_subscription(
    database: Database,
    tables: SubscriptionTables,
    team: str,
    sink: str,
    checker: SinkChecker,
    **fields: object,
) -> Subscription:
    await checker(sink)
    sub = Subscription(
        id=f"sub-{uuid4().hex[:8]}",
        team=team,
        sink_url=sink,
        types=("io.mlplane.model.",),
        subject_prefix=None,
        secret=SECRET,
        created_at=datetime.now(UTC),
        **fields,  # type: ignore[arg-type]
    )
    async with database.sessions() as session:
        await SubscriptionStore(session, tables).add(sub, "apikey:test")
        await session.commit()
    return sub


async def record(database: Database, tables: SubscriptionTables, *events: CloudEvent) -> None:
    async with database.sessions() as session:
        for event in events:
            await SubscriptionStore(session, tables).record_event(event)
        await session.commit()


async def deliveries(database: Database, tables: SubscriptionTables, sub: Subscription) -> list:  # type: ignore[type-arg]
    async with database.sessions() as session:
        return await SubscriptionStore(session, tables).deliveries(sub.id)


@pytest.fixture
async def dispatching(
    database: Database, tables: SubscriptionTables, checker: SinkChecker
) -> AsyncIterator[Callable[[int], None]]:
    """Runs a Dispatcher (N attempts, 50 ms base delay) for the test; yields its starter."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:

        def start(max_attempts: int) -> None:
            dispatcher = Dispatcher(
                PostgresDeliveries(database, tables),
                client,
                check_sink=checker,
                schedule=RetrySchedule(max_attempts, base_delay_s=0.05, max_delay_s=0.2),
                concurrency=4,
                timeout_s=2,
                lease_s=10,
                poll_s=0.05,
            )
            tasks.append(asyncio.create_task(dispatcher.run(stop)))

        yield start
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Polls `condition` (state in PostgreSQL or the receiver) until true, at most WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        while not await condition():  # noqa: ASYNC110 (state lives in the database)
            await asyncio.sleep(0.05)


def status_is(
    database: Database, tables: SubscriptionTables, sub: Subscription, status: DeliveryStatus
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await deliveries(database, tables, sub)
        return bool(found) and found[0].status is status

    return check


def received(receiver: Receiver, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(receiver.requests) >= count

    return check


async def test_matching_events_arrive_signed_in_either_content_mode(
    database: Database,
    tables: SubscriptionTables,
    checker: SinkChecker,
    make_event: MakeEvent,
    dispatching: Callable[[int], None],
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as url:
        team = make_event().data.team  # type: ignore[attr-defined]
        binary = await add_subscription(database, tables, team, f"{url}/hook", checker)
        structured = await add_subscription(
            database, tables, team, f"{url}/hook", checker, mode=ContentMode.STRUCTURED
        )
        wanted = make_event()
        await record(
            database,
            tables,
            wanted,
            wanted,  # a redelivered event is recorded once
            make_event("io.mlplane.image.built.v1"),  # another type
            make_event(of_team="someone-else"),  # another team
        )
        dispatching(3)
        await until(received(receiver, 2))
        await asyncio.sleep(0.3)  # nothing else may arrive
    assert len(receiver.requests) == 2
    by_subscription = {
        headers["x-mlplane-subscription"]: (headers, body) for headers, body in receiver.requests
    }
    for sub in (binary, structured):
        headers, body = by_subscription[sub.id]
        verify_signature(headers[SIGNATURE_HEADER.lower()], body, SECRET, tolerance_s=60)
        [event] = decode_http(headers, body)
        assert event == wanted
    assert "ce-id" in by_subscription[binary.id][0]
    assert by_subscription[structured.id][0]["content-type"].startswith(
        "application/cloudevents+json"
    )
    [log] = await deliveries(database, tables, binary)
    assert (log.status, log.attempt, log.last_error) == (DeliveryStatus.DELIVERED, 1, None)
    assert log.log[0]["status"] == 204


async def test_a_receiver_failing_for_a_while_gets_the_event_in_the_end(
    database: Database,
    tables: SubscriptionTables,
    checker: SinkChecker,
    make_event: MakeEvent,
    dispatching: Callable[[int], None],
    team: str,
) -> None:
    receiver = Receiver(failures=2)
    async with serve(receiver.app()) as url:
        sub = await add_subscription(database, tables, team, f"{url}/hook", checker)
        await record(database, tables, make_event())
        dispatching(5)
        await until(received(receiver, 3))
        await until(status_is(database, tables, sub, DeliveryStatus.DELIVERED))
    [delivery] = await deliveries(database, tables, sub)
    assert delivery.attempt == 3
    assert [entry["status"] for entry in delivery.log] == [500, 500, 204]
    # Every try is signed afresh, and carries the same event id.
    ids = {headers["ce-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1


async def test_a_receiver_that_never_recovers_dead_letters_after_n_tries(
    database: Database,
    tables: SubscriptionTables,
    checker: SinkChecker,
    make_event: MakeEvent,
    dispatching: Callable[[int], None],
    team: str,
) -> None:
    receiver = Receiver(failures=None)
    async with serve(receiver.app()) as url:
        sub = await add_subscription(database, tables, team, f"{url}/hook", checker)
        await record(database, tables, make_event())
        dispatching(3)
        await until(status_is(database, tables, sub, DeliveryStatus.DEAD))
        await asyncio.sleep(0.3)  # no fourth try
    assert len(receiver.requests) == 3
    async with database.sessions() as session:
        [dead] = await SubscriptionStore(session, tables).deliveries(sub.id, DeliveryStatus.DEAD)
    assert dead.attempt == 3
    assert dead.last_error == "gave up after 3 attempts; last: HTTP 500"
    assert len(dead.log) == 3


async def test_a_sink_on_a_private_address_is_refused(checker: SinkChecker) -> None:
    with pytest.raises(InvalidSink, match="loopback"):
        await SinkChecker()("http://127.0.0.1:9/hook")
    with pytest.raises(InvalidSink, match=r"resolves to 127\.0\.0\.1"):
        await SinkChecker()("https://localhost/hook")
    await checker("http://127.0.0.1:9/hook")  # allowlisted
