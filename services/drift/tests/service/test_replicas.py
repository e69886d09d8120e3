"""Two hosted drift services on one schema and one RabbitMQ queue, consuming `drift.samples`
concurrently, give the verdicts one replica gives on the same data: windows live in
PostgreSQL as mergeable partial summaries, never in a process's memory.

Real RabbitMQ (quorum queue `mlplane.<unique name>`, deleted after), real PostgreSQL,
real S3. "One replica's verdict" is the same window summarised in one piece and judged
by the same code the verdict worker runs.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pyarrow as pa
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent
from mlplane_drift.blobs import S3BlobStore
from mlplane_drift.detect import DriftConfig
from mlplane_drift.main import MIGRATIONS, build
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import DriftStore, DriftTables
from mlplane_drift.summaries import judge, summarise
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.bus.rabbit_topology import delete_service_queues
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.platform import Platform
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWork
from mlplane_testing.identity import GatewayIdentity

from .conftest import as_
from .support.data import parquet, registered, samples_event, table

AMQP_URL = os.environ.get("MLPLANE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WAIT_S = 60.0
BATCHES = 8
BATCH_ROWS = 250
WINDOW = BATCHES * BATCH_ROWS


def _counting(parts: ServiceParts, handled: Counter[str], replica: str) -> ServiceParts:
    """`parts` whose samples handler counts what this replica handled."""
    inner = parts.handlers[ev.DRIFT_SAMPLES]

    async def counted(event: CloudEvent, uow: UnitOfWork) -> None:
        await inner(event, uow)
        uow.after_commit(lambda: handled.update([replica]))

    handlers: dict[str, EventHandler] = {**parts.handlers, ev.DRIFT_SAMPLES: counted}
    return ServiceParts(
        handlers=handlers,
        routers=parts.routers,
        workers=parts.workers,
        lifespan=parts.lifespan,
        resources=parts.resources,
    )


@pytest.fixture
async def replicas(
    database_url: str,
    tables: DriftTables,
    settings: DriftSettings,
    blobs: S3BlobStore,
    tmp_path: Path,
) -> AsyncIterator[tuple[list[Platform], str, Counter[str]]]:
    name = f"dr{uuid4().hex[:10]}"
    handled: Counter[str] = Counter()
    fast = settings.model_copy(update={"poll_interval_s": 0.5, "window_count": WINDOW})

    def plugin(replica: str) -> ServicePlugin:
        def built(context: ServiceContext) -> ServiceParts:
            return _counting(build(context, tables, fast, blobs=blobs), handled, replica)

        schema = tables.metadata.schema
        assert schema is not None
        return ServicePlugin(
            name=name,
            schema=schema,
            metadata=tables.metadata,
            migrations=MIGRATIONS,
            build=built,
        )

    platforms = [
        Platform(
            RuntimeSettings(
                database_url=database_url,
                amqp_url=AMQP_URL,
                data_dir=tmp_path / replica,
                retry_max_attempts=2,
                retry_base_delay_s=0.05,
            ),
            [plugin(replica)],
        )
        for replica in ("a", "b")
    ]
    try:
        for platform in platforms:
            await platform.start()
        yield platforms, name, handled
    finally:
        for platform in platforms:
            await platform.stop()
        await delete_service_queues(AMQP_URL, name)


async def _publish(platform: Platform, *events: CloudEvent) -> None:
    messages = []
    for event in events:
        message = encode(event)
        messages.append(
            OutboundMessage(
                routing_key=message.routing_key,
                body=message.body,
                headers=message.headers,
                message_id=message.message_id,
                content_type=message.content_type,
            )
        )
    await platform.transport.publish(messages)


async def _until(check: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():  # noqa: ASYNC110 (the database offers no event to wait on)
            await asyncio.sleep(0.1)


def _features(document: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        f["feature"]: (f["method"], f["drifted"], f["score"], f["psi"])
        for f in document["features"]
    }


def _close(left: dict[str, tuple[Any, ...]], right: dict[str, tuple[Any, ...]]) -> bool:
    if left.keys() != right.keys():
        return False
    for name, (method, drifted, score, psi) in left.items():
        other = right[name]
        if (method, drifted) != other[:2]:
            return False
        # Float sums may differ in their last bits with the merge order (window.py).
        if not (math.isclose(score, other[2], rel_tol=1e-9, abs_tol=1e-12)):
            return False
        if not (math.isclose(psi, other[3], rel_tol=1e-9, abs_tol=1e-12)):
            return False
    return True


async def test_two_replicas_judge_windows_as_one_replica_does(
    replicas: tuple[list[Platform], str, Counter[str]],
    tables: DriftTables,
    team: str,
) -> None:
    platforms, name, handled = replicas
    first = platforms[0]
    reference = table(3000, seed=1)
    await _publish(first, registered(team))

    async def version_known() -> bool:
        async with first.database.sessions() as session:
            return await DriftStore(session, tables).version_exists(team, "fraud", 1)

    await _until(version_known)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=first.app),
        base_url="http://mlplane",
        auth=GatewayIdentity(name),
    ) as http:
        put = await http.put(
            f"/{name}/models/fraud/versions/1/reference",
            content=parquet(reference),
            headers={**as_(team), "content-type": "application/vnd.apache.parquet"},
        )
        assert put.status_code == 200, put.text

        shifted = [table(BATCH_ROWS, seed=10 + i, shift=0.4) for i in range(BATCHES)]
        same = [table(BATCH_ROWS, seed=50 + i) for i in range(BATCHES)]
        events = []
        for prod, staging in zip(shifted, same, strict=True):
            events.append(samples_event(team, prod))
            events.append(samples_event(team, staging, environment=ev.Environment.STAGING))
        await _publish(first, *events)

        async def judged() -> bool:
            async with first.database.sessions() as session:
                store = DriftStore(session, tables)
                windows = [
                    *await store.windows_of(team, "fraud", 1, "prod"),
                    *await store.windows_of(team, "fraud", 1, "staging"),
                ]
            return len(windows) == 2 and all(w.state == "done" for w in windows)

        await _until(judged)
        listed = await http.get(f"/{name}/models/fraud/reports", headers=as_(team))
        reports = {r["environment"]: r for r in listed.json()["reports"]}
        documents = {
            environment: (
                await http.get(f"/{name}/reports/{report['id']}", headers=as_(team))
            ).json()
            for environment, report in reports.items()
        }
    assert set(documents) == {"prod", "staging"}
    assert sum(handled.values()) == 2 * BATCHES
    # Both replicas consumed.
    assert handled["a"] > 0, handled
    assert handled["b"] > 0, handled

    profile = ReferenceProfile.from_table(reference)
    config = DriftConfig(share_threshold=0.5)
    for environment, batches in (("prod", shifted), ("staging", same)):
        whole = pa.concat_tables(batches)
        blob, count = summarise(profile, whole)
        alone = judge(profile, [blob], config).verdict
        document = documents[environment]
        assert document["window"]["samples"] == count == WINDOW
        assert document["dataset_drifted"] == alone.dataset_drifted
        assert document["drift_share"] == alone.drift_share
        expected = {
            r.feature: (None if r.method is None else str(r.method), r.drifted, r.score, r.psi)
            for r in alone.features
        }
        assert _close(_features(document), expected), (environment, document["features"])
    assert documents["prod"]["features"][0]["drifted"] is True  # the shift was seen
