"""The SSE stream served for real: read some events, disconnect, resume with Last-Event-ID.

The gateway is built by its own `build` and served on 127.0.0.1; the callers are API
keys of the test's team, made with the operator key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlplane_contracts.envelope import CloudEvent
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions.store import SubscriptionStore
from mlplane_gateway.subscriptions.stream import parse_last_event_id
from mlplane_gateway.subscriptions.tables import SubscriptionTables
from mlplane_gateway.tables import define_tables
from mlplane_runtime.db import Database
from mlplane_runtime.errors import InvalidInput
from mlplane_testing.http_server import serve

from ..conftest import BOOTSTRAP_KEY, hosted_gateway
from .conftest import MakeEvent

READ_S = 10.0


@dataclass(frozen=True)
class Stream:
    url: str
    subscriber: dict[str, str]
    """Headers of a key of the team holding `events:subscribe`."""
    unscoped: dict[str, str]
    """Headers of a key of the team without it."""


async def _key(client: httpx.AsyncClient, team: str, scopes: list[str]) -> dict[str, str]:
    made = await client.post(
        "/v1/keys",
        json={"team": team, "name": "stream", "scopes": scopes},
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


@pytest.fixture
async def stream(
    database: Database,
    tables: SubscriptionTables,
    team: str,
    settings_for: Callable[..., GatewaySettings],
    tmp_path: Path,
) -> AsyncIterator[Stream]:
    settings = settings_for(
        redis_url=None,
        key_burst=10_000,
        team_burst=10_000,
        delivery_poll_s=0.05,
        stream_keepalive_s=0.5,
    )
    gateway_tables = define_tables(tables.subscriptions.schema)
    app, gateway = hosted_gateway(database, gateway_tables, settings, tmp_path)
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            yield Stream(
                url,
                subscriber=await _key(client, team, ["events:subscribe"]),
                unscoped=await _key(client, team, ["models:read"]),
            )
    finally:
        await gateway.aclose()


async def record(database: Database, tables: SubscriptionTables, *events: CloudEvent) -> None:
    async with database.sessions() as session:
        for event in events:
            await SubscriptionStore(session, tables).record_event(event)
        await session.commit()


async def read_frames(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """The next `count` event frames (comments and `retry:` skipped)."""
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(READ_S):
        async for line in response.aiter_lines():
            if not line:
                if "id" in current:
                    frames.append(current)
                    if len(frames) == count:
                        return frames
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    raise AssertionError(f"the stream ended after {len(frames)} frames")


async def test_a_reconnect_with_last_event_id_gets_only_later_events(
    stream: Stream, database: Database, tables: SubscriptionTables, make_event: MakeEvent
) -> None:
    first = [make_event(subject=f"models/fraud/versions/{n}") for n in range(3)]
    await record(database, tables, *first, make_event(of_team="other-team"))
    async with httpx.AsyncClient(base_url=stream.url, timeout=READ_S) as client:
        async with client.stream("GET", "/v1/events/stream", headers=stream.subscriber) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            frames = await read_frames(response, 2)
        assert [CloudEvent.model_validate_json(f["data"]).id for f in frames] == [
            e.id for e in first[:2]
        ]
        assert [f["event"] for f in frames] == [first[0].type] * 2
        last_seen = frames[-1]["id"]

        later = [make_event(subject=f"models/fraud/versions/{n}") for n in range(3, 5)]
        await record(database, tables, *later)
        async with client.stream(
            "GET", "/v1/events/stream", headers={**stream.subscriber, "Last-Event-ID": last_seen}
        ) as resumed:
            again = await read_frames(resumed, 3)
    ids = [CloudEvent.model_validate_json(f["data"]).id for f in again]
    assert ids == [first[2].id, later[0].id, later[1].id]
    assert [int(f["id"]) for f in again] == sorted(int(f["id"]) for f in again)
    assert int(again[0]["id"]) > int(last_seen)


async def test_events_recorded_while_connected_arrive_and_filters_apply(
    stream: Stream, database: Database, tables: SubscriptionTables, make_event: MakeEvent
) -> None:
    async with (
        httpx.AsyncClient(base_url=stream.url, timeout=READ_S) as client,
        client.stream(
            "GET",
            "/v1/events/stream",
            params={"type_prefix": "io.mlplane.drift.", "subject_prefix": "models/fraud/"},
            headers=stream.subscriber,
        ) as response,
    ):
        wanted = make_event("io.mlplane.drift.detected.v1", subject="models/fraud/x")
        await record(
            database,
            tables,
            make_event("io.mlplane.model.alias.changed.v1", subject="models/fraud/x"),
            make_event("io.mlplane.drift.detected.v1", subject="models/churn/x"),
            wanted,
        )
        [frame] = await read_frames(response, 1)
    assert CloudEvent.model_validate_json(frame["data"]).id == wanted.id
    assert frame["event"] == "io.mlplane.drift.detected.v1"


async def test_an_idle_stream_sends_keep_alive_comments(stream: Stream) -> None:
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=stream.url, timeout=READ_S) as client,
        client.stream("GET", "/v1/events/stream", headers=stream.subscriber) as response,
        asyncio.timeout(READ_S),
    ):
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": keep-alive":
                break
    assert lines[-1] == ": keep-alive"
    assert not any(line.startswith("id:") for line in lines)


async def test_the_stream_needs_the_subscribe_scope(stream: Stream) -> None:
    async with httpx.AsyncClient(base_url=stream.url, timeout=READ_S) as client:
        answer = await client.get("/v1/events/stream", headers=stream.unscoped)
        anonymous = await client.get("/v1/events/stream")
    assert answer.status_code == 403
    assert anonymous.status_code == 401


def test_last_event_id_must_be_one_the_stream_sent() -> None:
    assert parse_last_event_id(None) == 0
    assert parse_last_event_id(" 42 ") == 42
    for bad in ("-1", "abc", "1e3", str(2**63)):
        with pytest.raises(InvalidInput):
            parse_last_event_id(bad)
