"""The registry plug-in hosted by the platform (embedded bus, real PostgreSQL), end to end.

The platform migrates it, mounts its API under `/<name>`, relays what it emits and
delivers other services' events to its handlers. The name and schemas are unique
to the test: others run the same tests against the same PostgreSQL at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import new_event
from mlplane_registry.main import make_plugin
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity
from sqlalchemy import text

WAIT_S = 30.0
T = TypeVar("T")
T0 = datetime(2026, 11, 1, tzinfo=UTC)
IMAGE = ev.ImageReference(repository="harbor.example.com/ml/fraud", digest="sha256:" + "e" * 64)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                answer = await probe()
                if answer is not None:
                    return answer
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} (waited {WAIT_S:g} s)") from None


@dataclass
class Hosted:
    platform: Platform
    http: httpx.AsyncClient
    name: str
    schema: str


@pytest.fixture
async def hosted(
    database_url: str,
    registry_database: Database,
    tmp_path: Path,
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Hosted]:
    monkeypatch.setenv(
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS", json.dumps({team: ["s3://models/"]})
    )
    name = f"rg{uuid4().hex[:10]}"
    schema = f"t_{uuid4().hex[:10]}"
    bus_schema = f"t_{uuid4().hex[:10]}"
    settings = RuntimeSettings(
        database_url=database_url,
        amqp_url=None,
        data_dir=tmp_path / "data",
        retry_max_attempts=2,
        retry_base_delay_s=0.05,
    )
    platform = Platform(settings, [make_plugin(name, schema)], bus_schema=bus_schema)
    try:
        await platform.start()
        transport = httpx.ASGITransport(app=platform.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://mlplane", auth=GatewayIdentity(name)
        ) as http:
            yield Hosted(platform, http, name, schema)
    finally:
        await platform.stop()
        await registry_database.drop_schema(schema)
        await registry_database.drop_schema(bus_schema)


async def publish(platform: Platform, payload: ev.EventPayload, source: str) -> None:
    event = new_event(payload, source=source, subject="models/x/fraud/versions/1", sequence=1)
    message = encode(event)
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


async def test_a_hosted_registry_registers_relays_and_follows_the_lifecycle(
    hosted: Hosted, registry_database: Database, team: str
) -> None:
    http, base = hosted.http, f"/{hosted.name}"
    head = {"X-Mlplane-Team": team}
    assert (await http.post(f"{base}/models", json={"name": "fraud"}, headers=head)).is_success
    body: dict[str, Any] = {
        "framework": "onnx",
        "artifact": {"uri": "s3://models/fraud/1", "size_bytes": 9, "sha256": "ab" * 32},
        "lineage": {
            "git_repository": "https://git.example.com/ml/fraud",
            "commit_sha": "c" * 40,
            "ci_run_url": "https://ci.example.com/runs/1",
        },
    }
    created = await http.post(f"{base}/models/fraud/versions", json=body, headers=head)
    assert created.status_code == 201, created.text

    async def outbox_drained() -> bool | None:
        async with registry_database.sessions() as session:
            left = await session.execute(text(f'SELECT count(*) FROM "{hosted.schema}".outbox'))
            return True if left.scalar_one() == 0 else None

    await eventually(outbox_drained, "the relay never published model.version.registered")

    # The scanner's verdict overtakes the builder's result on the bus.
    common = {"team": team, "model": "fraud", "version": 1, "image": IMAGE}
    await publish(
        hosted.platform,
        ev.ImageScanned(
            **common,
            verdict=ev.ScanVerdict.PASSED,
            counts=ev.SeverityCounts(),
            report_uri="s3://reports/1.json",
            scanner_version="trivy 0.58",
            scanned_at=T0 + timedelta(seconds=20),
        ),
        "/mlplane/scanner",
    )
    layer = ev.ImageLayer(
        digest="sha256:" + "f" * 64, size_bytes=1, media_type="application/octet-stream"
    )
    await publish(
        hosted.platform,
        ev.ImageBuilt(
            **common,
            base_image=IMAGE,
            layers=(layer,),
            size_bytes=1,
            backend=ev.BuildBackend.OCI_APPEND,
            built_at=T0 + timedelta(seconds=10),
        ),
        "/mlplane/builder",
    )

    async def built_and_scanned() -> dict[str, Any] | None:
        got = await http.get(f"{base}/models/fraud/versions/1", headers=head)
        lifecycle: dict[str, Any] = got.json()["lifecycle"]
        return lifecycle if lifecycle["image"] and lifecycle["stage"] == "scanned" else None

    lifecycle = await eventually(built_and_scanned, "the version never reached scanned")
    assert lifecycle["scan_verdict"] == "passed"

    # A build result after the scan contradicts it: dead-lettered, state unchanged.
    await publish(
        hosted.platform,
        ev.ImageBuildFailed(
            team=team,
            model="fraud",
            version=1,
            backend=ev.BuildBackend.OCI_APPEND,
            reason="late failure",
            retryable=False,
            failed_at=T0 + timedelta(seconds=30),
        ),
        "/mlplane/builder",
    )

    async def dead_lettered() -> list[dict[str, Any]] | None:
        listed = await http.get(f"{base}/dead-letters")
        assert listed.status_code == 200, listed.text
        letters: list[dict[str, Any]] = listed.json()["dead_letters"]
        return letters or None

    letters = await eventually(dead_lettered, "the contradicting event was not dead-lettered")
    assert [letter["routing_key"] for letter in letters] == [ev.IMAGE_BUILD_FAILED]
    assert "never rebuilt" in letters[0]["reason"]
    final = await http.get(f"{base}/models/fraud/versions/1", headers=head)
    assert final.json()["lifecycle"]["stage"] == "scanned"
