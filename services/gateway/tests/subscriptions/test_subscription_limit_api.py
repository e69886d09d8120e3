"""The most subscriptions a team may have, over HTTP: one more is 409 problem+json,
and creates racing each other never pass the limit together (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlplane_gateway.deps import HostedGateway
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions.tables import SubscriptionTables
from mlplane_gateway.tables import define_tables
from mlplane_runtime.db import Database

from ..conftest import BOOTSTRAP_KEY, LOCAL_SINK, hosted_gateway

OPERATOR = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
Gateways = Callable[..., Any]


@pytest.fixture
async def gateway_client(
    database: Database,
    tables: SubscriptionTables,
    settings_for: Callable[..., GatewaySettings],
    tmp_path: Path,
) -> AsyncIterator[Gateways]:
    """Builds the gateway's app on the test's schema with settings overrides."""
    gateway_tables = define_tables(tables.subscriptions.schema)
    built: list[tuple[httpx.AsyncClient, HostedGateway]] = []

    async def make(**overrides: Any) -> httpx.AsyncClient:
        settings = settings_for(key_burst=10_000, team_burst=10_000, **overrides)
        app, gateway = hosted_gateway(database, gateway_tables, settings, tmp_path)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        )
        built.append((client, gateway))
        return client

    try:
        yield make
    finally:
        for client, gateway in built:
            await client.aclose()
            await gateway.aclose()


async def create(client: httpx.AsyncClient, team: str) -> httpx.Response:
    return await client.post(
        "/v1/subscriptions", json={"sink": LOCAL_SINK, "team": team}, headers=OPERATOR
    )


async def count(client: httpx.AsyncClient, team: str) -> int:
    listed = await client.get("/v1/subscriptions", params={"team": team}, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    return len(listed.json()["subscriptions"])


async def test_the_26th_subscription_of_a_team_is_a_409_naming_the_limit(
    gateway_client: Gateways, team: str, other_team: str
) -> None:
    client = await gateway_client()  # the default limit, 25
    for _ in range(25):
        assert (await create(client, team)).status_code == 201
    refused = await create(client, team)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["limit"] == 25
    assert "25 subscriptions" in problem["detail"]
    assert await count(client, team) == 25
    # Another team's count is its own.
    assert (await create(client, other_team)).status_code == 201


async def test_concurrent_creates_never_pass_the_limit(gateway_client: Gateways, team: str) -> None:
    client = await gateway_client(max_subscriptions_per_team=3)
    answers = await asyncio.gather(*(create(client, team) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * 3 + [409] * 5
    assert await count(client, team) == 3


async def test_deleting_a_subscription_makes_room_for_another(
    gateway_client: Gateways, team: str
) -> None:
    client = await gateway_client(max_subscriptions_per_team=1)
    first = await create(client, team)
    assert first.status_code == 201
    assert (await create(client, team)).status_code == 409
    deleted = await client.delete(f"/v1/subscriptions/{first.json()['id']}", headers=OPERATOR)
    assert deleted.status_code == 204
    assert (await create(client, team)).status_code == 201
