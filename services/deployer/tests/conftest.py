"""Shared fixtures of the deployer's tests: the real PostgreSQL (a throwaway schema per
test), a real bare git repository as the GitOps remote, the deployer built by its own
`build`, and events delivered through its consumer as the bus delivers them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_deployer.cluster import ClusterSync
from mlplane_deployer.deps import HostedDeployer
from mlplane_deployer.main import MIGRATIONS, build
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables, define_tables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.service import ServiceContext, ServiceParts
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    migrated_schema,
)
from mlplane_testing.delivery import deliverer
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context
from sqlalchemy import select

from .support.events import git


@pytest.fixture(scope="session")
def deployer_database(database: Database) -> Database:  # noqa: F811
    return database


@pytest.fixture
async def tables(deployer_database: Database) -> AsyncIterator[DeployerTables]:
    """The deployer migrated into a fresh schema, dropped (cascade) after the test."""
    async with migrated_schema(deployer_database, MIGRATIONS) as schema:
        yield define_tables(schema)


@pytest.fixture
def uow_factory(deployer_database: Database, tables: DeployerTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(deployer_database, tables.messaging, "deployer")


@pytest.fixture
def team() -> str:
    """A team name no other test uses."""
    return f"team-{uuid4().hex[:8]}"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository standing for the GitOps remote."""
    bare = tmp_path / "gitops.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    return bare


@dataclass
class Hosted:
    """One deployer built by `build` on a test context: its app client, worker, consumer."""

    context: ServiceContext
    parts: ServiceParts
    http: httpx.AsyncClient
    consumer: EventConsumer

    @property
    def deployer(self) -> HostedDeployer:
        assert isinstance(self.parts.resources, HostedDeployer)
        return self.parts.resources

    async def deliver(self, *events: CloudEvent) -> None:
        deliver = deliverer(self.consumer)
        for event in events:
            await deliver(event)

    async def run_jobs(self) -> int:
        """Run every due deployment job; how many ran."""
        ran = 0
        while await self.deployer.worker.run_once() is not None:
            ran += 1
        return ran


@pytest.fixture
def settings(remote: Path, tmp_path: Path) -> DeployerSettings:
    # The manifest scan against a real scanner is tested in tests/manifest_scan/.
    return DeployerSettings(
        gitops_remote=str(remote),
        gitops_workdir=tmp_path / "clone",
        retry_delay_s=0,
        manifest_scan="off",
    )


@asynccontextmanager
async def hosting(
    on: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    data_dir: Path,
    cluster: ClusterSync | None = None,
) -> AsyncIterator[Hosted]:
    """One deployer built by its own `build` (nothing started), with its HTTP client."""
    context = service_context("deployer", on, tables.messaging, data_dir=data_dir)
    parts = build(context, tables, settings, cluster=cluster)
    app = service_app(context, parts)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://deployer.test", auth=GatewayIdentity("deployer")
    ) as http:
        yield Hosted(
            context,
            parts,
            http,
            EventConsumer("deployer", context.uow_factory, dict(parts.handlers)),
        )


@pytest.fixture
async def hosted(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
) -> AsyncIterator[Hosted]:
    async with hosting(deployer_database, tables, settings, tmp_path / "deployer") as hosted:
        yield hosted


async def status_events(
    uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> list[dict[str, Any]]:
    """The `deployment.status_changed` data the deployer wrote to its outbox, in order."""
    outbox = tables.messaging.outbox
    async with uow_factory.reading() as uow:
        rows = await uow.session.execute(
            select(outbox.c.body)
            .where(outbox.c.type == ev.DEPLOYMENT_STATUS_CHANGED)
            .order_by(outbox.c.position)
        )
        return [json.loads(row.body) for row in rows]
