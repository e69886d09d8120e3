"""The real test PostgreSQL and throwaway schemas, for every package's tests.

Other engineers run tests on the same PostgreSQL at the same time, so each test works
in its own schema `t_<10 hex>` and drops it (cascade) afterwards.

Fixtures (a conftest imports them to use them, as with `s3_endpoint`):

- `database_url` (session): MLPLANE_TEST_DATABASE_URL, else the local default.
- `database` (session): one `Database` on it for the whole session.
- `schema` (function): a fresh, empty schema, dropped after the test.

A service's own fixture migrates its history into a schema with `migrated_schema`::

    @pytest.fixture
    async def tables(database: Database) -> AsyncIterator[RegistryTables]:
        async with migrated_schema(database, MIGRATIONS) as schema:
            yield define_tables(schema)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.migrations import upgrade_to_head

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def database_url_from_env() -> str:
    """The test PostgreSQL URL: env MLPLANE_TEST_DATABASE_URL, else the local default."""
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def unique_schema_name() -> str:
    """A schema name no other test uses: `t_` and 10 hex digits."""
    return f"t_{uuid4().hex[:10]}"


@asynccontextmanager
async def fresh_schema(database: Database) -> AsyncIterator[str]:
    """A new, empty schema for the block, dropped (cascade) when it ends, however it ends."""
    name = unique_schema_name()
    await database.ensure_schema(name)
    try:
        yield name
    finally:
        await database.drop_schema(name)


@asynccontextmanager
async def migrated_schema(database: Database, migrations: str | Path) -> AsyncIterator[str]:
    """A fresh schema with the Alembic history at `migrations` applied up to head.

    The schema is dropped (cascade) when the block ends, also when the migration
    fails; the migration's error propagates.
    """
    async with fresh_schema(database) as name:
        await upgrade_to_head(database.url, migrations, name)
        yield name


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test PostgreSQL URL (env MLPLANE_TEST_DATABASE_URL)."""
    return database_url_from_env()


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
    async with fresh_schema(database) as name:
        yield name
