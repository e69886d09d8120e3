"""Shared fixtures of the registry's tests: the real PostgreSQL, a throwaway schema per test.

Other engineers run tests on the same PostgreSQL at the same time: each test
migrates the registry into its own schema `t_<hex>` and drops it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from mlplane_registry import handlers
from mlplane_registry.domain import TeamArtifactLocations
from mlplane_registry.main import MIGRATIONS, build
from mlplane_registry.mlflow.settings import MlflowApiSettings
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables, define_tables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    migrated_schema,
)
from mlplane_testing.delivery import Deliver, deliverer
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context


@pytest.fixture(scope="session")
def registry_database(database: Database) -> Database:  # noqa: F811
    """The session's `Database` on the test PostgreSQL, under the registry tests' name."""
    return database


@pytest.fixture
async def tables(registry_database: Database) -> AsyncIterator[RegistryTables]:
    """The registry migrated into a fresh schema, dropped (cascade) after the test."""
    async with migrated_schema(registry_database, MIGRATIONS) as schema:
        yield define_tables(schema)


@pytest.fixture
def uow_factory(registry_database: Database, tables: RegistryTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(registry_database, tables.messaging, "registry")


# Where the tests' artifacts lie: configured for the test's team (a version's artifact
# must be a verified upload or under one of the team's locations).
TEST_ARTIFACT_LOCATIONS = ["s3://models/"]


@pytest.fixture
async def client(
    registry_database: Database, tables: RegistryTables, team: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the registry's API (problem+json errors included), team-less.

    The app is the registry's own `build` on a test context (local-disk artifacts
    under `tmp_path`), served as the host serves it, at the root.
    """
    settings = RegistrySettings(
        default_page_size=10,
        max_page_size=50,
        team_artifact_locations={team: TEST_ARTIFACT_LOCATIONS},
    )
    context = service_context(
        "registry", registry_database, tables.messaging, data_dir=tmp_path / "registry"
    )
    parts = build(context, tables, settings, MlflowApiSettings())
    app = service_app(context, parts)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://registry.test", auth=GatewayIdentity("registry")
    ) as http:
        yield http


@pytest.fixture
def consumer(tables: RegistryTables, uow_factory: UnitOfWorkFactory, team: str) -> EventConsumer:
    """The registry's idempotent consumer (inbox, poison sorting) over its handlers."""
    locations = TeamArtifactLocations.parse({team: TEST_ARTIFACT_LOCATIONS})
    return EventConsumer("registry", uow_factory, handlers.event_handlers(tables, locations))


@pytest.fixture
def deliver(consumer: EventConsumer) -> Deliver:
    """Deliver one event to the registry as the bus would (encoded, then decoded)."""
    return deliverer(consumer)


@pytest.fixture
def team() -> str:
    """A team name no other test uses."""
    return f"team-{uuid4().hex[:8]}"
