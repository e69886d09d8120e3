"""The drift service plugs in like every service: an entry point, its own schema, the
handlers its queue is bound to; and hosted on embedded defaults (the in-process bus,
profiles and reports on the local disk) it takes samples and judges on its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.topology import CONSUMES
from mlplane_drift.main import make_plugin, plugin
from mlplane_runtime.bus.base import DeadLetter, OutboundMessage
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity

from .conftest import as_, body
from .support.data import parquet, registered, samples_event, table

WAIT_S = 30.0


def test_the_drift_service_is_an_installed_service_plugin() -> None:
    [found] = [e for e in entry_points(group="mlplane.services") if e.name == "drift"]
    assert found.value == "mlplane_drift.main:plugin"
    assert (plugin.name, plugin.schema) == ("drift", "drift")
    assert plugin.migrations is not None
    assert plugin.migrations.is_dir()


@pytest.fixture
async def embedded(
    database_url: str,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Platform, str, Path]]:
    for variable in ("S3_ENDPOINT_URL", "WINDOW_COUNT", "WINDOW_SECONDS", "POLL_INTERVAL_S"):
        monkeypatch.delenv(f"MLPLANE_DRIFT_{variable}", raising=False)
    # A poll far longer than the test may wait: only the wake-up after commit judges.
    monkeypatch.setenv("MLPLANE_DRIFT_POLL_INTERVAL_S", "600")
    name = f"dr{uuid4().hex[:10]}"
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
        await database.drop_schema(schema)
        await database.drop_schema(bus_schema)


async def test_it_consumes_what_its_queue_is_bound_to(
    embedded: tuple[Platform, str, Path],
) -> None:
    platform, _, _ = embedded
    [service] = platform.services
    assert set(service.parts.handlers) == set(CONSUMES["drift"])


async def test_hosted_on_embedded_defaults_it_judges_a_full_window_at_once(
    embedded: tuple[Platform, str, Path], team: str
) -> None:
    platform, name, data_dir = embedded
    message = encode(registered(team))
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
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app),
        base_url="http://mlplane",
        auth=GatewayIdentity(name),
    ) as http:
        put = None
        async with asyncio.timeout(WAIT_S):
            while put is None or put.status_code == 404:  # until the event is consumed
                await asyncio.sleep(0.05)
                put = await http.put(
                    f"/{name}/models/fraud/versions/1/reference",
                    content=parquet(table(2000, seed=1)),
                    headers={**as_(team), "content-type": "application/vnd.apache.parquet"},
                )
        assert put.status_code == 200, put.text
        sent = await http.post(
            f"/{name}/samples", json=body(table(1000, seed=2, shift=2.0)), headers=as_(team)
        )
        assert sent.json()["window_closed"] is True
        reports: list[dict[str, object]] = []
        async with asyncio.timeout(WAIT_S):
            while not reports:
                await asyncio.sleep(0.05)
                listed = await http.get(f"/{name}/models/fraud/reports", headers=as_(team))
                reports = listed.json()["reports"]
        metrics = (await http.get("/metrics")).text
    [report] = reports
    assert report["drifted_features"] == ["amount"]
    uri = str(report["report_uri"])
    assert uri.startswith((data_dir / name).as_uri())  # the local disk, embedded
    assert (
        f'mlplane_drift_feature_drifted{{environment="prod",feature="amount",model="fraud",'
        f'service="{name}",team="{team}"}} 1.0'
    ) in metrics


def _message(event: CloudEvent) -> OutboundMessage:
    message = encode(event)
    return OutboundMessage(
        routing_key=message.routing_key,
        body=message.body,
        headers=message.headers,
        message_id=message.message_id,
        content_type=message.content_type,
    )


async def test_bad_batches_on_the_bus_are_dead_lettered_with_their_reason(
    embedded: tuple[Platform, str, Path], team: str
) -> None:
    platform, name, _ = embedded
    unknown = samples_event(team, table(10, seed=1))
    huge = encode(samples_event(team, table(2, seed=1)))
    rows = json.loads(huge.body)
    rows["samples"] = rows["samples"] * 5001  # 10,002 samples: past the contract's limit
    oversized = OutboundMessage(
        routing_key=huge.routing_key,
        body=json.dumps(rows).encode(),
        headers=huge.headers,
        message_id=uuid4().hex,
        content_type=huge.content_type,
    )
    await platform.transport.publish([_message(unknown), oversized])
    letters: list[DeadLetter] = []
    async with asyncio.timeout(WAIT_S):
        while len(letters) < 2:
            await asyncio.sleep(0.05)
            letters = await platform.transport.dead_letters(name)
    reasons = {letter.message_id: letter.reason for letter in letters}
    assert f"has no version 1 registered for team {team}" in reasons[unknown.id]
    assert "samples" in reasons[oversized.message_id]
    assert "at most 10000" in reasons[oversized.message_id]
    # Nothing else broke: the service still takes events.
    await platform.transport.publish([_message(registered(team, "other", 2))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app),
        base_url="http://mlplane",
        auth=GatewayIdentity(name),
    ) as http:
        answer = None
        async with asyncio.timeout(WAIT_S):
            while answer is None or "registered" in answer.json()["detail"]:
                await asyncio.sleep(0.05)
                answer = await http.get(
                    f"/{name}/models/other/versions/2/reference", headers=as_(team)
                )
    assert answer.status_code == 404
    assert "no reference profile" in answer.json()["detail"]
