"""What the registry's integration tests host the registry with: in this process as a
platform, or as `mlplane serve registry --workers N`, each in schemas of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_registry.deps import HostedRegistry
from mlplane_registry.main import make_plugin
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.telemetry.metrics import HOT_ANSWERS
from mlplane_testing.identity import TEST_IDENTITY_SECRET, GatewayIdentity

SERVICE = "registry"
WAIT_S = 60.0
START_S = 240.0
"""A whole `mlplane serve` starting on a machine others load too."""
LOCATIONS = "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS"


def version_body(number: int, **changes: Any) -> dict[str, Any]:
    """A new version's body: an artifact under `s3://models/` (the team's location)."""
    body: dict[str, Any] = {
        "framework": "onnx",
        "artifact": {"uri": f"s3://models/fraud/{number}", "size_bytes": 9, "sha256": "ab" * 32},
        "lineage": {
            "git_repository": "https://git.example.com/ml/fraud",
            "commit_sha": f"{number:040x}",
            "ci_run_url": f"https://ci.example.com/runs/{number}",
        },
    }
    return body | changes


@asynccontextmanager
async def hosted_registry(
    database_url: str,
    registry_database: Database,
    data_dir: Path,
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """A started platform hosting the registry (`team` may use `s3://models/`), once its
    read cache listens; stopped and its schemas dropped after."""
    monkeypatch.setenv(LOCATIONS, json.dumps({team: ["s3://models/"]}))
    schema, bus_schema = (f"t_{uuid4().hex[:10]}" for _ in range(2))
    settings = RuntimeSettings(database_url=database_url, amqp_url=None, data_dir=data_dir)
    hosted = Platform(settings, [make_plugin(SERVICE, schema)], bus_schema=bus_schema)
    await hosted.start()
    try:
        registry = hosted.services[0].parts.resources
        assert isinstance(registry, HostedRegistry)
        # Answers are kept only once the cache LISTENs (a moment after the start).
        async with asyncio.timeout(WAIT_S):
            while not registry.cache.enabled:  # noqa: ASYNC110 (a state to poll)
                await asyncio.sleep(0.02)
        yield hosted
    finally:
        await hosted.stop()
        await registry_database.drop_schema(schema)
        await registry_database.drop_schema(bus_schema)


def as_member(platform: Platform, team: str) -> httpx.AsyncClient:
    """A client calling `platform`'s registry as the gateway does, for `team`'s caller."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app),
        base_url=f"http://mlplane/{SERVICE}",
        auth=GatewayIdentity(SERVICE),
        headers={"X-Mlplane-Team": team},
    )


def hot_answers(route: str) -> float:
    """How many requests the registry's hot route `route` (as written on it) answered."""
    return HOT_ANSWERS.labels(SERVICE, f"/{SERVICE}{route}")._value.get()


@dataclass
class Served:
    """A running `mlplane serve registry`: its process and port; `output` once stopped."""

    process: asyncio.subprocess.Process
    port: int
    output: str = ""


@asynccontextmanager
async def serving_registry(
    database_url: str, registry_database: Database, data_dir: Path, team: str, workers: int
) -> AsyncIterator[Served]:
    """`mlplane serve registry --workers <workers>` in a schema of its own, once it answers
    `/healthz`; stopped by SIGTERM (killed after a minute) and its schema dropped after."""
    schema = f"t_{uuid4().hex[:10]}"
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLPLANE_")}
    env |= {
        "MLPLANE_DATABASE_URL": database_url,
        "MLPLANE_HTTP_PORT": str(port),
        "MLPLANE_DATA_DIR": str(data_dir / "data"),
        "MLPLANE_IDENTITY_SECRET": TEST_IDENTITY_SECRET,
        LOCATIONS: json.dumps({team: ["s3://models/"]}),
        "MLPLANE_LOG_LEVEL": "WARNING",
    }
    # The registry's schema is its own name's; this one is the test's, so it can be dropped.
    launcher = (
        "import sys; from mlplane_registry import main; "
        f"main.plugin = main.make_plugin('registry', {schema!r}); "
        "from mlplane_sdk.cli import main as cli; sys.argv = ['mlplane'] + sys.argv[1:]; cli()"
    )
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", launcher, "serve", "registry", "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served = Served(process, port)
    try:
        await _until_healthy(served)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(WAIT_S):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()
        served.output = output.decode(errors="replace")
        await registry_database.drop_schema(schema)


async def _until_healthy(served: Served) -> None:
    async with asyncio.timeout(START_S), httpx.AsyncClient() as probe:
        while True:
            assert served.process.returncode is None, "mlplane serve exited"
            try:
                if (await probe.get(f"http://127.0.0.1:{served.port}/healthz")).is_success:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
