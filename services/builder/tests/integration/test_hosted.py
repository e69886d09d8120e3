"""The builder plug-in hosted by the platform (in-process bus, real PostgreSQL), end to end:
an event on the bus, a build recorded, a worker woken at once (not at its next poll),
the image in the embedded OCI layout, the build readable over the platform's HTTP API."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_builder.main import make_plugin
from mlplane_contracts.amqp import encode
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity

from ..conftest import registered

WAIT_S = 30.0


@pytest.fixture
async def hosted(
    database_url: str,
    builder_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Platform, str, Path]]:
    # A poll far longer than the test may wait: only the wake-up can start the build.
    monkeypatch.setenv("MLPLANE_BUILDER_POLL_INTERVAL_S", "600")
    for variable in ("REGISTRY_URL", "BASE_IMAGES", "LOCAL_ARTIFACT_ROOT"):
        monkeypatch.delenv(f"MLPLANE_BUILDER_{variable}", raising=False)
    name = f"bd{uuid4().hex[:10]}"
    schema = f"t_{uuid4().hex[:10]}"
    bus_schema = f"t_{uuid4().hex[:10]}"
    data_dir = tmp_path / "data"
    settings = RuntimeSettings(
        database_url=database_url,
        amqp_url=None,
        data_dir=data_dir,
        retry_max_attempts=2,
        retry_base_delay_s=0.05,
    )
    platform = Platform(settings, [make_plugin(name, schema)], bus_schema=bus_schema)
    try:
        await platform.start()
        yield platform, name, data_dir
    finally:
        await platform.stop()
        await builder_database.drop_schema(schema)
        await builder_database.drop_schema(bus_schema)


async def test_a_hosted_builder_builds_on_the_event_at_once(
    hosted: tuple[Platform, str, Path], team: str
) -> None:
    platform, name, data_dir = hosted
    content = b"\x00weights\x01" * 1000
    objects = data_dir / "registry" / "artifacts" / "objects"
    artifact = objects / "teams" / team / "models" / "fraud" / "x1" / "model.onnx"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(content)
    event = registered(
        team,
        uri=artifact.as_uri(),
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )
    message = encode(event)
    started = time.monotonic()
    await platform.transport.publish(
        [
            OutboundMessage(
                routing_key=message.routing_key,
                body=message.body,
                headers=message.headers,
                message_id=message.message_id,
                content_type=message.content_type,
            )
        ]
    )
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://mlplane", auth=GatewayIdentity(name)
    ) as http:
        build: dict[str, Any] | None = None
        async with asyncio.timeout(WAIT_S):
            while build is None or build["status"] != "succeeded":
                await asyncio.sleep(0.05)
                answer = await http.get(f"/{name}/builds", headers={"X-Mlplane-Team": team})
                assert answer.status_code == 200
                builds = answer.json()["builds"]
                build = builds[0] if builds else None
                assert build is None or build["status"] != "failed", build
        elapsed = time.monotonic() - started
        metrics = (await http.get("/metrics")).text
    assert elapsed < 20  # far below the 600 s poll: the consumer's commit woke the worker
    assert build["image_tag"] == "v1"
    assert build["reused"] is False
    layout = data_dir / name / "images" / "mlplane" / team / "fraud"
    assert (layout / "index.json").exists()
    assert (layout / "blobs" / "sha256" / build["image_digest"].split(":")[1]).exists()
    assert (
        f'mlplane_builder_build_duration_seconds_count{{outcome="succeeded",service="{name}"}}'
        in metrics
    )
