"""Verified API keys kept in memory, on the real PostgreSQL: no query per request while
kept, yet revocation refused at once by every gateway (NOTIFY), expiry honoured, and
no cache at all while the LISTEN connection is down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mlplane_runtime.db import Database
from sqlalchemy import event, text

from ..conftest import Harness

# A route that authenticates and checks models:read, then answers without touching
# the database: the tests' gateways have no registry (503 service-not-configured).
AUTHENTICATED_ONLY = "/v1/registry/models"
PASSED = 503
WAIT_S = 5.0
"""Bound on waiting for the LISTEN connection to come up or be seen down."""


@contextmanager
def counted_queries(database: Database) -> Iterator[list[str]]:
    """Every statement the gateway's engine sends while inside."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def listening(harness_for: Callable[..., Any]) -> Harness:
    """A gateway whose key cache is on (its LISTEN connection up)."""
    harness: Harness = await harness_for(key_burst=10_000, team_burst=10_000)
    assert harness.gateway.auth.revocations is not None
    assert harness.gateway.auth.verified_keys is not None
    harness.gateway.auth.revocations.start()
    keys = harness.gateway.auth.verified_keys
    await until(lambda: keys.active)
    return harness


async def call(harness: Harness, token: str) -> Any:
    return await harness.client.get(AUTHENTICATED_ONLY, headers=harness.bearer(token))


async def test_a_kept_key_is_checked_without_a_query(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness = await listening(harness_for)
    token = await harness.key_token(team, "models:read")
    assert (await call(harness, token)).status_code == PASSED  # read once, kept
    with counted_queries(harness.database) as queries:
        answers = [await call(harness, token) for _ in range(5)]
    assert [a.status_code for a in answers] == [PASSED] * 5
    assert queries == []
    # The kept hash still decides: the right id with a wrong secret is refused.
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused = await call(harness, forged)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the API key is not valid"


async def test_a_key_revoked_through_one_gateway_is_refused_at_once_by_another(
    harness_for: Callable[..., Any], team: str
) -> None:
    revoking, other = await listening(harness_for), await listening(harness_for)
    created = await revoking.create_key(team, ["models:read"])
    assert (await call(other, created["key"])).status_code == PASSED
    assert other.gateway.auth.verified_keys is not None
    assert len(other.gateway.auth.verified_keys) == 1

    revoked = await revoking.client.delete(f"/v1/keys/{created['id']}", headers=revoking.operator)
    assert revoked.status_code == 204
    # The other gateway's NOTIFY arrives while the revocation's answer travels back;
    # yielding to the event loop once lets this (shared) loop read it, as a separate
    # process's loop would in the meantime.
    await asyncio.sleep(0.05)
    refused = await call(other, created["key"])
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_a_key_revoked_in_sql_is_dropped_from_every_cache(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness = await listening(harness_for)
    created = await harness.create_key(team, ["models:read"])
    assert (await call(harness, created["key"])).status_code == PASSED
    keys = harness.gateway.auth.verified_keys
    assert keys is not None
    assert keys.get(created["id"]) is not None
    schema = harness.tables.metadata.schema
    async with harness.database.sessions() as session:
        await session.execute(
            text(f'UPDATE "{schema}".api_keys SET revoked_at = now() WHERE id = :id'),
            {"id": created["id"]},
        )
        await session.commit()
    await until(lambda: keys.get(created["id"]) is None)
    assert (await call(harness, created["key"])).status_code == 401


async def test_a_kept_key_still_expires_on_time(harness_for: Callable[..., Any], team: str) -> None:
    harness = await listening(harness_for)
    created = await harness.create_key(
        team, ["models:read"], expires_at=datetime.now(UTC) + timedelta(milliseconds=600)
    )
    assert (await call(harness, created["key"])).status_code == PASSED
    with counted_queries(harness.database) as queries:
        assert (await call(harness, created["key"])).status_code == PASSED
        assert queries == []  # kept, yet:
        await asyncio.sleep(0.7)
        expired = await call(harness, created["key"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


async def test_without_its_listen_connection_a_gateway_reads_every_key(
    harness_for: Callable[..., Any], team: str, gateway_database: Database
) -> None:
    harness = await listening(harness_for)
    keys = harness.gateway.auth.verified_keys
    assert keys is not None
    token = await harness.key_token(team, "models:read")
    assert (await call(harness, token)).status_code == PASSED
    assert len(keys) == 1

    channel = f"mlplane_api_keys_{harness.tables.metadata.schema}"[:63]
    async with gateway_database.engine.connect() as conn:
        # What LISTENs on this test's channel: only this gateway's connection.
        pids = (
            await conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE :listen"
                    " AND pid <> pg_backend_pid()"
                ),
                {"listen": f'LISTEN "{channel}"%'},
            )
        ).scalars()
        found = list(pids)
        assert len(found) == 1
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": found[0]})
    await until(lambda: not keys.active)

    with counted_queries(harness.database) as queries:
        assert (await call(harness, token)).status_code == PASSED
    assert any("api_keys" in query for query in queries)
    assert len(keys) == 0
    # It comes back (after its backoff), starting empty.
    await until(lambda: keys.active)
    assert len(keys) == 0
