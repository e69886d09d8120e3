"""Shared fixtures of the builder's tests: the real PostgreSQL, a throwaway schema per test.

Other engineers run tests on the same PostgreSQL at the same time: each test
migrates the builder into its own schema `t_<hex>` and drops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from mlplane_builder.main import MIGRATIONS
from mlplane_builder.store import BuilderTables, define_tables
from mlplane_contracts import events as ev
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_runtime.bus.base import InboundMessage
from mlplane_runtime.consumer import EventConsumer, EventHandler
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_runtime.uow import UnitOfWorkFactory

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REGISTERED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

Deliver = Callable[[CloudEvent], Awaitable[None]]


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test PostgreSQL URL (env MLPLANE_TEST_DATABASE_URL)."""
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
async def builder_database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url, pool_size=5, max_overflow=20)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def tables(builder_database: Database, database_url: str) -> AsyncIterator[BuilderTables]:
    """The builder migrated into a fresh schema, dropped (cascade) after the test."""
    schema = f"t_{uuid4().hex[:10]}"
    await builder_database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        yield define_tables(schema)
    finally:
        await builder_database.drop_schema(schema)


@pytest.fixture
def uow_factory(builder_database: Database, tables: BuilderTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(builder_database, tables.messaging, "builder")


def deliverer(consumer: EventConsumer) -> Deliver:
    """Deliver one event to `consumer` as the bus would (encoded, then decoded)."""

    async def send(event: CloudEvent) -> None:
        message = encode(event)
        await consumer(
            InboundMessage(
                body=message.body,
                headers=message.headers,
                content_type=message.content_type,
                message_id=event.id,
                routing_key=event.type,
            )
        )

    return send


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
) -> CloudEvent:
    """A `model.version.registered` event as the registry emits it."""
    return new_event(
        ev.ModelVersionRegistered(
            team=team,
            model=model,
            version=version,
            artifact=ev.ModelArtifact(uri=uri, sha256=sha256, size_bytes=size, framework=framework),
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
