"""Shared fixtures of the builder's tests: the real PostgreSQL, a throwaway schema per test.

Other engineers run tests on the same PostgreSQL at the same time: each test
migrates the builder into its own schema `t_<hex>` and drops it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from mlplane_builder.main import MIGRATIONS
from mlplane_builder.store import BuilderTables, define_tables
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_runtime.consumer import EventConsumer, EventHandler
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    migrated_schema,
)
from mlplane_testing.delivery import deliverer  # noqa: F401 (tests import it from here)

REGISTERED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def builder_database(database: Database) -> Database:  # noqa: F811
    """The session's `Database` on the test PostgreSQL, under the builder tests' name."""
    return database


@pytest.fixture
async def tables(builder_database: Database) -> AsyncIterator[BuilderTables]:
    """The builder migrated into a fresh schema, dropped (cascade) after the test."""
    async with migrated_schema(builder_database, MIGRATIONS) as schema:
        yield define_tables(schema)


@pytest.fixture
def uow_factory(builder_database: Database, tables: BuilderTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(builder_database, tables.messaging, "builder")


def consumer_of(uow_factory: UnitOfWorkFactory, handlers: dict[str, EventHandler]) -> EventConsumer:
    return EventConsumer("builder", uow_factory, handlers)


@pytest.fixture
def team() -> str:
    """A team name no other test uses."""
    return f"team-{uuid4().hex[:8]}"


def registered(
    team: str,
    *,
    model: str = "fraud",
    version: int = 1,
    uri: str = "s3://models/fraud/1/model.onnx",
    sha256: str = "ab" * 32,
    size: int = 2048,
    framework: ev.ModelFramework = ev.ModelFramework.SKLEARN,
    media_type: str | None = None,
) -> CloudEvent:
    """A `model.version.registered` event as the registry emits it."""
    return new_event(
        ev.ModelVersionRegistered(
            team=team,
            model=model,
            version=version,
            artifact=ev.ModelArtifact(
                uri=uri, sha256=sha256, size_bytes=size, framework=framework, media_type=media_type
            ),
            lineage=ev.Lineage(
                git_repository="https://git.example.com/ml/fraud",
                commit_sha="c" * 40,
                ci_run_url="https://ci.example.com/runs/42",
            ),
            registered_by="service:ci:github_actions",
            registered_at=REGISTERED_AT,
        ),
        source="/mlplane/registry",
        subject=f"models/{team}/{model}/versions/{version}",
    )
