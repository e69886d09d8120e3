"""Fixtures of the subscription tests: the gateway migrated into a throwaway schema
`t_<hex>` of the real PostgreSQL, and events of a team unique to the test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import uuid4

import pytest
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.examples import example_event
from mlplane_gateway.subscriptions.tables import SubscriptionTables, define_subscription_tables
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.migrations import upgrade_to_head
from sqlalchemy import MetaData

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url, pool_size=3, max_overflow=5)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def tables(database: Database, database_url: str) -> AsyncIterator[SubscriptionTables]:
    """The gateway's whole migration history applied to a fresh schema, dropped afterwards."""
    schema = f"t_{uuid4().hex[:10]}"
    await database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        yield define_subscription_tables(MetaData(schema=schema))
    finally:
        await database.drop_schema(schema)


@pytest.fixture
def team() -> str:
    return f"team-{uuid4().hex[:8]}"


MakeEvent = Callable[..., CloudEvent]


@pytest.fixture
def make_event(team: str) -> MakeEvent:
    """A new event (fresh id) of `team` unless told otherwise."""

    def make(
        event_type: str = "io.mlplane.model.alias.changed.v1",
        subject: str = "models/fraud/versions/7",
        of_team: str | None = None,
    ) -> CloudEvent:
        event = example_event(event_type)
        data = event.data.model_copy(update={"team": of_team or team})
        return event.model_copy(update={"id": str(uuid4()), "subject": subject, "data": data})

    return make
