"""Throwaway schemas for tests: created fresh, migrated when asked, always dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.util.exc import CommandError
from mlplane_runtime.db import Database
from mlplane_testing import database as testing_database
from mlplane_testing.database import fresh_schema, migrated_schema, unique_schema_name
from sqlalchemy import text

EXAMPLE = Path(__file__).parent.parent / "fixtures" / "migrations_example"


async def tables_in(database: Database, schema: str) -> set[str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        )
        return {row[0] for row in rows}


async def schema_exists(database: Database, schema: str) -> bool:
    async with database.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
        )
        return found.first() is not None


class TestFreshSchema:
    async def test_each_block_gets_its_own_empty_schema_dropped_after_it(
        self, database: Database
    ) -> None:
        async with fresh_schema(database) as first, fresh_schema(database) as second:
            assert first != second
            assert await schema_exists(database, first)
            assert await tables_in(database, first) == set()

        assert not await schema_exists(database, first)
        assert not await schema_exists(database, second)


class TestMigratedSchema:
    async def test_the_history_is_applied_up_to_head(self, database: Database) -> None:
        async with migrated_schema(database, EXAMPLE) as schema:
            assert await tables_in(database, schema) == {
                "alembic_version",
                "outbox",
                "outbox_sequence",
                "inbox",
            }

        assert not await schema_exists(database, schema)

    async def test_the_schema_is_dropped_when_the_migration_fails(
        self, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name = unique_schema_name()
        monkeypatch.setattr(testing_database, "unique_schema_name", lambda: name)

        with pytest.raises(CommandError):
            async with migrated_schema(database, tmp_path / "no-such-history"):
                pytest.fail("the block ran although the migration failed")

        assert not await schema_exists(database, name)
