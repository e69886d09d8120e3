"""Fixtures of the scanner's integration tests: real PostgreSQL (a throwaway schema per
test), real S3 (a bucket per test), real Trivy and the test images and database of
`tests/conftest.py`, wired by the scanner's own `build` (the same composition root).

- `scanner`: a `ScannerUnderTest` (consumer, worker, rescan watch, HTTP client, clock).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.s3_bucket import BucketSpace
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from mlplane_scanner.deps import HostedScanner
from mlplane_scanner.main import MIGRATIONS, build
from mlplane_scanner.reports import S3ReportStore
from mlplane_scanner.rescan import RescanWatch
from mlplane_scanner.service import ScannerService
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import ScannerTables, define_tables
from mlplane_scanner.trivy import TrivyRunner
from mlplane_scanner.worker import ScanWorker, WorkerConfig
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    migrated_schema,
)
from mlplane_testing.delivery import as_delivered
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.oci_registry import OciRegistryEndpoint, unique_repository
from mlplane_testing.s3_server import (
    S3Endpoint,
    delete_bucket,
    s3_endpoint,  # noqa: F401 (a fixture: the real S3 server)
    unique_bucket,
)
from mlplane_testing.service import service_app, service_context
from sqlalchemy import select

from ..support.oci_image import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    Blob,
    Layer,
    sha256_digest,
    with_manifest,
)
from ..support.registry import push_image

MAX_WORKER_ROUNDS = 20


@pytest.fixture(scope="session")
def scanner_database(database: Database) -> Database:  # noqa: F811
    """The session's `Database` on the test PostgreSQL, under the scanner tests' name."""
    return database


@pytest.fixture
async def tables(scanner_database: Database) -> AsyncIterator[ScannerTables]:
    """The scanner migrated into a fresh schema, dropped (cascade) after the test."""
    async with migrated_schema(scanner_database, MIGRATIONS) as schema:
        yield define_tables(schema)


@pytest.fixture
async def reports(s3_endpoint: S3Endpoint) -> AsyncIterator[S3ReportStore]:  # noqa: F811
    store = S3ReportStore(
        s3_endpoint.url,
        BucketSpace(unique_bucket("scans"), "scanner/"),
        s3_endpoint.region,
        s3_endpoint.access_key,
        s3_endpoint.secret_key,
    )
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        await delete_bucket(s3_endpoint, store.space.bucket)


@dataclass
class Clock:
    """The services' clock, moved by tests (exception expiry without waiting)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class ScannerUnderTest:
    team: str
    tables: ScannerTables
    uow_factory: UnitOfWorkFactory
    consumer: EventConsumer
    worker: ScanWorker
    http: httpx.AsyncClient
    reports: S3ReportStore
    clock: Clock
    service_of: Callable[[UnitOfWork], ScannerService]
    make_worker: Callable[[TrivyRunner], ScanWorker]
    make_watch: Callable[[TrivyRunner], RescanWatch]

    async def deliver(self, event: CloudEvent) -> None:
        """Deliver an event as the bus would (encoded, then decoded by the consumer)."""
        await self.consumer(as_delivered(event))

    async def drain(self, worker: ScanWorker | None = None) -> int:
        """Run the worker until no scan waits; how many it processed (bounded)."""
        for processed in range(MAX_WORKER_ROUNDS):
            if not await (worker or self.worker).run_once():
                return processed
        raise AssertionError(f"scans still pending after {MAX_WORKER_ROUNDS} rounds")

    async def scanned_events(self) -> list[dict[str, Any]]:
        """The `image.scanned` payloads in the outbox, in commit order."""
        outbox = self.tables.messaging.outbox
        async with self.uow_factory() as uow:
            rows = await uow.session.execute(
                select(outbox.c.body)
                .where(outbox.c.type == ev.IMAGE_SCANNED)
                .order_by(outbox.c.position)
            )
            return [json.loads(row.body) for row in rows]

    def built(self, reference: str, *, model: str = "fraud", version: int = 1) -> CloudEvent:
        repository, digest = reference.split("@", 1)
        image = ev.ImageReference(repository=repository, digest=digest)
        data = ev.ImageBuilt(
            team=self.team,
            model=model,
            version=version,
            image=image,
            base_image=image,
            layers=(ev.ImageLayer(digest=digest, size_bytes=1, media_type="application/x-tar"),),
            size_bytes=1,
            backend=ev.BuildBackend.OCI_APPEND,
            built_at=self.clock(),
        )
        return new_event(data, source="/mlplane/builder", subject=f"models/{self.team}/{model}")

    def deployed(self, reference: str, *, model: str = "fraud", version: int = 1) -> CloudEvent:
        repository, digest = reference.split("@", 1)
        data = ev.DeploymentStatusChanged(
            deployment_id=uuid4(),
            team=self.team,
            model=model,
            version=version,
            environment=ev.Environment.PROD,
            phase=ev.DeploymentPhase.HEALTHY,
            image=ev.ImageReference(repository=repository, digest=digest),
            changed_at=self.clock(),
        )
        return new_event(data, source="/mlplane/deployer", subject=f"deployments/{uuid4()}")


@pytest.fixture
async def scanner(
    tables: ScannerTables,
    scanner_database: Database,
    reports: S3ReportStore,
    trivy_runner: TrivyRunner,
    tmp_path: Path,
) -> AsyncIterator[ScannerUnderTest]:
    """The scanner from its own `build` on a test context (the session's Trivy runner,
    the test's S3 report store, a clock the test moves); nothing started: tests drive
    the consumer and `drain` the worker."""
    clock = Clock()
    settings = ScannerSettings(
        _env_file=None,  # type: ignore[call-arg]
        max_concurrent_scans=2,
        lease_s=60.0,
        poll_interval_s=0.5,
        scan_attempts=2,
        rescan_interval_s=3600,
        verdict_environment=ev.Environment.PROD,
        layout_root=tmp_path / "no-layouts",  # images come from the registry
    )
    context = service_context(
        "scanner", scanner_database, tables.messaging, data_dir=tmp_path / "scanner"
    )
    parts = build(context, tables, settings, runner=trivy_runner, reports=reports, clock=clock)
    hosted = parts.resources
    assert isinstance(hosted, HostedScanner)
    uow_factory = context.uow_factory
    service_of = hosted.service
    config = WorkerConfig.of(settings, None)

    def make_worker(runner: TrivyRunner) -> ScanWorker:
        return ScanWorker("scanner", uow_factory, service_of, runner, reports, config)

    def make_watch(runner: TrivyRunner) -> RescanWatch:
        return RescanWatch(
            uow_factory, service_of, runner, interval_s=3600, wake_worker=lambda: None
        )

    worker = hosted.worker
    consumer = EventConsumer("scanner", uow_factory, parts.handlers)
    app = service_app(context, parts)
    team = f"team-{uuid4().hex[:8]}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://scanner.test",
        headers={"X-Mlplane-Team": team, "X-Mlplane-Principal": "user:alice@acme.io"},
        auth=GatewayIdentity("scanner"),
    ) as http:
        yield ScannerUnderTest(
            team,
            tables,
            uow_factory,
            consumer,
            worker,
            http,
            reports,
            clock,
            service_of,
            make_worker,
            make_watch,
        )


@pytest.fixture(scope="session")
async def corrupt_image(oci_registry: OciRegistryEndpoint) -> str:
    """An image in the registry whose only layer is not a gzip'd tar (Trivy cannot read it)."""
    # Its own config and diff id: Trivy caches analyses by image id and diff id, and
    # would reuse a good image's analysis instead of reading the junk.
    junk_bytes = f"this is not a gzip stream {uuid4()}".encode()
    junk = Layer(Blob(OCI_LAYER_GZIP, junk_bytes), sha256_digest(junk_bytes))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [junk.diff_id]},
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config).encode())
    return await push_image(
        oci_registry, unique_repository("corrupt"), "1", with_manifest(config_blob, (junk,))
    )
