"""Fixtures of the drift service's tests: the real PostgreSQL (a throwaway schema per
test), the real S3 server (a bucket per test, deleted after), the service built by its
own `build` with a clock the test moves, its HTTP API signed as the gateway signs, and
events delivered through its consumer as the bus delivers them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pyarrow as pa
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_drift.blobs import S3BlobStore
from mlplane_drift.deps import HostedDrift
from mlplane_drift.main import MIGRATIONS, build
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import DriftStore, DriftTables, WindowRow, define_tables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.s3 import S3Connection
from mlplane_runtime.service import ServiceContext, ServiceParts
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    migrated_schema,
)
from mlplane_testing.delivery import deliverer
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.s3_server import (  # noqa: F401 (a fixture: the real S3 server)
    S3Endpoint,
    delete_bucket,
    s3_endpoint,
    unique_bucket,
)
from mlplane_testing.service import service_app, service_context
from sqlalchemy import select

from .support.data import parquet, registered

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


class Clock:
    """The service's time, moved by the test."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def tables(database: Database) -> AsyncIterator[DriftTables]:  # noqa: F811
    """The drift service migrated into a fresh schema, dropped (cascade) after the test."""
    async with migrated_schema(database, MIGRATIONS) as schema:
        yield define_tables(schema)


@pytest.fixture
def team() -> str:
    return f"team-{uuid4().hex[:8]}"


@pytest.fixture
async def bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:  # noqa: F811
    name = unique_bucket("drift")
    try:
        yield name
    finally:
        await delete_bucket(s3_endpoint, name)


def s3_connection(endpoint: S3Endpoint) -> S3Connection:
    return S3Connection(endpoint.url, endpoint.region, endpoint.access_key, endpoint.secret_key)


@pytest.fixture
async def blobs(
    s3_endpoint: S3Endpoint,  # noqa: F811
    settings: DriftSettings,
) -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(s3_connection(s3_endpoint), settings.s3_space())
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def settings(s3_endpoint: S3Endpoint, bucket: str) -> DriftSettings:  # noqa: F811
    return DriftSettings(
        window_count=1000,
        window_seconds=0,
        s3_endpoint_url=s3_endpoint.url,
        s3_bucket=bucket,
        s3_access_key=s3_endpoint.access_key,
        s3_secret_key=s3_endpoint.secret_key,
        poll_interval_s=600,
    )


@dataclass
class Hosted:
    """One drift service built by `build` on a test context: its client, consumer, clock."""

    context: ServiceContext
    parts: ServiceParts
    http: httpx.AsyncClient
    consumer: EventConsumer
    clock: Clock
    tables: DriftTables
    bucket: str
    blobs: S3BlobStore
    transport: httpx.ASGITransport

    @property
    def drift(self) -> HostedDrift:
        assert isinstance(self.parts.resources, HostedDrift)
        return self.parts.resources

    async def deliver(self, *events: CloudEvent) -> None:
        deliver = deliverer(self.consumer)
        for event in events:
            await deliver(event)

    async def judge(self) -> list[str]:
        """Judge every window waiting now; their outcomes."""
        return await self.drift.worker.drain()

    async def ready(
        self, team: str, reference: pa.Table, model: str = "fraud", version: int = 1
    ) -> None:
        """Version registered and its reference uploaded."""
        await self.deliver(registered(team, model, version))
        answer = await self.http.put(
            f"/models/{model}/versions/{version}/reference",
            content=parquet(reference),
            headers={**as_(team), "content-type": "application/vnd.apache.parquet"},
        )
        assert answer.status_code == 200, answer.text

    async def post(self, team: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/samples", json=body, headers=as_(team))

    async def windows(
        self, team: str, model: str = "fraud", version: int = 1, environment: str = "prod"
    ) -> list[WindowRow]:
        async with self.context.uow_factory.reading() as uow:
            return await DriftStore(uow.session, self.tables).windows_of(
                team, model, version, environment
            )

    async def events(self, event_type: str = ev.DRIFT_DETECTED) -> list[dict[str, Any]]:
        """The data of `event_type` events in the outbox, in order."""
        outbox = self.tables.messaging.outbox
        async with self.context.uow_factory.reading() as uow:
            rows = await uow.session.execute(
                select(outbox.c.body).where(outbox.c.type == event_type).order_by(outbox.c.position)
            )
            return [json.loads(row.body) for row in rows]


def as_(team: str, principal: str = "user:alice") -> dict[str, str]:
    return {"X-Mlplane-Team": team, "X-Mlplane-Principal": principal}


def body(
    data: pa.Table, model: str = "fraud", version: int = 1, environment: str = "prod"
) -> dict[str, Any]:
    from .support.data import samples

    return {
        "model": model,
        "version": version,
        "environment": environment,
        "samples": samples(data),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def hosted(
    database: Database,  # noqa: F811
    tables: DriftTables,
    settings: DriftSettings,
    blobs: S3BlobStore,
    bucket: str,
    clock: Clock,
    tmp_path: Path,
) -> AsyncIterator[Hosted]:
    context = service_context("drift", database, tables.messaging, data_dir=tmp_path / "drift")
    parts = build(context, tables, settings, blobs=blobs, clock=clock)
    transport = httpx.ASGITransport(app=service_app(context, parts))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://drift.test",
        auth=GatewayIdentity("drift"),
    ) as http:
        yield Hosted(
            context,
            parts,
            http,
            EventConsumer("drift", context.uow_factory, dict(parts.handlers)),
            clock,
            tables,
            bucket,
            blobs,
            transport,
        )


@pytest.fixture
def uow_factory(database: Database, tables: DriftTables) -> UnitOfWorkFactory:  # noqa: F811
    return UnitOfWorkFactory(database, tables.messaging, "drift")
