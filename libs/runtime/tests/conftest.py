"""Shared fixtures of the runtime's tests: the real PostgreSQL and RabbitMQ on this machine.

Other engineers run tests against the same servers at the same time, so every test
works in its own freshly created schema (`schema`) and drops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from mlplane_runtime.db import Database, create_database

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test PostgreSQL URL (env MLPLANE_TEST_DATABASE_URL)."""
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The test RabbitMQ URL (env MLPLANE_TEST_AMQP_URL)."""
    return os.environ.get("MLPLANE_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    """One `Database` on the test PostgreSQL for the whole session."""
    db = create_database(database_url, pool_size=5, max_overflow=20)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def schema(database: Database) -> AsyncIterator[str]:
    """A fresh, empty schema `t_<10 hex>` for one test, dropped (cascade) after it."""
    name = f"t_{uuid4().hex[:10]}"
    await database.ensure_schema(name)
    try:
        yield name
    finally:
        await database.drop_schema(name)
