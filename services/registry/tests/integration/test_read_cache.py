"""The read cache never answers stale after an acknowledged write on another worker.

Two platforms host the same registry (same schema, same database) in this process,
as two workers do: each has its own cache and its own LISTEN connection, and the
test can look into worker B's cache to make sure it did answer from it. A write
through A is acknowledged, then B must answer with it at once, with no waiting,
also while B's LISTEN connection is down and after it is back. The last test runs
`mlplane serve registry --workers 2` itself and checks the same over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from mlplane_registry.deps import HostedRegistry
from mlplane_registry.main import make_plugin
from mlplane_registry.read_cache import ReadCache
from mlplane_runtime.db import Database, libpq_url
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity

from .hosting import START_S, WAIT_S, serving_registry, version_body

ROUNDS = 20


@dataclass
class Worker:
    platform: Platform
    http: httpx.AsyncClient

    @property
    def cache(self) -> ReadCache:
        resources = self.platform.services[0].parts.resources
        assert isinstance(resources, HostedRegistry)
        return resources.cache


async def _until(condition: Any, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 (a state to poll, not an event)
            await asyncio.sleep(0.02)
    assert condition(), what


@pytest.fixture
async def workers(
    database_url: str,
    registry_database: Database,
    tmp_path: Path,
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Worker, Worker, str]]:
    monkeypatch.setenv(
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS", json.dumps({team: ["s3://models/"]})
    )
    name, schema, bus_schema = (f"t_{uuid4().hex[:10]}" for _ in range(3))
    name = name.replace("_", "")
    started: list[Worker] = []
    try:
        for index in range(2):
            settings = RuntimeSettings(
                database_url=database_url, amqp_url=None, data_dir=tmp_path / f"w{index}"
            )
            platform = Platform(settings, [make_plugin(name, schema)], bus_schema=bus_schema)
            await platform.start()
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=platform.app),
                base_url=f"http://mlplane/{name}",
                auth=GatewayIdentity(name),
                headers={"X-Mlplane-Team": team},
            )
            started.append(Worker(platform, http))
        a, b = started
        await _until(lambda: a.cache.enabled and b.cache.enabled, "the caches never listened")
        yield a, b, schema
    finally:
        for worker in started:
            await worker.http.aclose()
            await worker.platform.stop()
        await registry_database.drop_schema(schema)
        await registry_database.drop_schema(bus_schema)


async def _alias_version(worker: Worker) -> int:
    answer = await worker.http.get("/models/fraud/aliases/champion")
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]["version"]
    return version


async def test_a_write_on_one_worker_is_read_at_once_on_the_other(
    workers: tuple[Worker, Worker, str],
) -> None:
    a, b, _ = workers
    assert (await a.http.post("/models", json={"name": "fraud"})).status_code == 201
    for number in (1, 2):
        created = await a.http.post("/models/fraud/versions", json=version_body(number))
        assert created.status_code == 201, created.text
    put = await a.http.put("/models/fraud/aliases/champion", json={"version": 1})
    assert put.status_code == 200, put.text

    hits = b.cache.hits
    for number in range(ROUNDS):
        expected = 1 + number % 2
        moved = await a.http.put("/models/fraud/aliases/champion", json={"version": expected})
        assert moved.status_code == 200, moved.text
        # The first read after the write fills B's cache, the second is answered from it.
        assert await _alias_version(b) == expected
        assert await _alias_version(b) == expected
    assert b.cache.hits >= hits + ROUNDS, "worker B never answered from its cache"

    # A version's own change (its tags) and its deletion are seen at once too.
    assert (await b.http.get("/models/fraud/versions/2")).json()["tags"] == {}
    assert (await b.http.get("/models/fraud/versions/2")).json()["tags"] == {}
    patched = await a.http.patch("/models/fraud/versions/2", json={"tags": {"k": "v"}})
    assert patched.status_code == 200, patched.text
    seen = await b.http.get("/models/fraud/versions/2")
    assert seen.json()["tags"] == {"k": "v"}
    assert seen.headers["ETag"] == patched.headers["ETag"]
    await a.http.put("/models/fraud/aliases/champion", json={"version": 1})
    assert (await a.http.delete("/models/fraud/versions/2")).status_code == 204
    assert (await b.http.get("/models/fraud/versions/2")).status_code == 404


async def test_reads_stay_current_while_the_listen_connection_is_down_and_after(
    workers: tuple[Worker, Worker, str], database_url: str
) -> None:
    a, b, _ = workers
    assert (await a.http.post("/models", json={"name": "fraud"})).status_code == 201
    for number in (1, 2):
        assert (await a.http.post("/models/fraud/versions", json=version_body(number))).is_success
    await a.http.put("/models/fraud/aliases/champion", json={"version": 1})
    assert await _alias_version(b) == 1
    assert await _alias_version(b) == 1

    # Cut B's LISTEN connection from the server side, as a database restart would.
    listener = b.cache.listener
    assert listener is not None
    assert listener.connected
    pid = listener.backend_pid
    admin = await asyncpg.connect(libpq_url(database_url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    # Whether B noticed yet or not, what A writes now is what B answers.
    for expected in (2, 1, 2):
        await a.http.put("/models/fraud/aliases/champion", json={"version": expected})
        assert await _alias_version(b) == expected
    await _until(
        lambda: listener.connected and listener.backend_pid != pid, "B never listened again"
    )
    hits = b.cache.hits
    for expected in (1, 2, 1):
        await a.http.put("/models/fraud/aliases/champion", json={"version": expected})
        assert await _alias_version(b) == expected
        assert await _alias_version(b) == expected
    assert b.cache.hits > hits, "B's cache was not used again after reconnecting"


async def test_mlplane_serve_with_two_workers_reads_its_writes_on_any_worker(
    database_url: str, registry_database: Database, tmp_path: Path, team: str
) -> None:
    async with serving_registry(database_url, registry_database, tmp_path, team, 2) as served:
        base = f"http://127.0.0.1:{served.port}/registry"
        async with httpx.AsyncClient(
            base_url=base, auth=GatewayIdentity("registry"), headers={"X-Mlplane-Team": team}
        ) as http:
            pids = await _worker_pids(served.process.pid)
            assert len(pids) == 2, f"expected 2 workers, found {pids}"
            await _until_ready(http, served.process)
            assert (await http.post("/models", json={"name": "fraud"})).status_code == 201
            for number in (1, 2):
                assert (
                    await http.post("/models/fraud/versions", json=version_body(number))
                ).is_success
            for number in range(ROUNDS):
                expected = 1 + number % 2
                # A new connection per request: the kernel hands each to either worker.
                async with httpx.AsyncClient(
                    base_url=base,
                    auth=GatewayIdentity("registry"),
                    headers={"X-Mlplane-Team": team, "Connection": "close"},
                ) as fresh:
                    put = await fresh.put(
                        "/models/fraud/aliases/champion", json={"version": expected}
                    )
                    assert put.status_code == 200, put.text
                    for _ in range(3):
                        answer = await fresh.get("/models/fraud/aliases/champion")
                        assert answer.json()["version"]["version"] == expected
    assert served.process.returncode == 0, served.output[-3000:]


async def _worker_pids(parent: int) -> list[int]:
    async with asyncio.timeout(START_S):
        while True:
            pgrep = await asyncio.create_subprocess_exec(
                "pgrep", "-P", str(parent), stdout=subprocess.PIPE
            )
            found = (await pgrep.communicate())[0].split()
            if len(found) >= 2:
                return [int(pid) for pid in found]
            await asyncio.sleep(0.1)


async def _until_ready(http: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(START_S):
        while True:
            assert server.returncode is None, "mlplane serve exited"
            try:
                if (await http.get("/models")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
