"""Alembic per service schema: own version table, idempotent, matching the runtime's tables."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from mlplane_runtime.db import Database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.migrations import SCHEMA_ATTRIBUTE, upgrade_to_head
from sqlalchemy import Connection, MetaData, text

EXAMPLE = Path(__file__).parent / "fixtures" / "migrations_example"


@pytest.fixture
async def new_schema(database: Database) -> AsyncIterator[str]:
    """A unique schema name that does not exist yet; dropped after the test if created."""
    name = f"t_{uuid4().hex[:10]}"
    try:
        yield name
    finally:
        await database.drop_schema(name)


async def _tables_in(database: Database, schema: str) -> set[str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        )
        return {row[0] for row in rows}


async def _version_in(database: Database, schema: str) -> list[str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
        return [row[0] for row in rows]


class TestUpgradeToHead:
    async def test_creates_the_schema_with_its_own_version_table(
        self, database: Database, new_schema: str
    ) -> None:
        await upgrade_to_head(database.url, EXAMPLE, new_schema)
        assert await _tables_in(database, new_schema) == {
            "alembic_version",
            "outbox",
            "outbox_sequence",
            "inbox",
        }
        assert await _version_in(database, new_schema) == ["0001"]

    async def test_upgrading_twice_changes_nothing(
        self, database: Database, new_schema: str
    ) -> None:
        await upgrade_to_head(database.url, EXAMPLE, new_schema)
        await upgrade_to_head(database.url, EXAMPLE, new_schema)
        assert await _version_in(database, new_schema) == ["0001"]

    async def test_concurrent_upgrades_of_one_schema_all_succeed(
        self, database: Database, new_schema: str
    ) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(upgrade_to_head(database.url, EXAMPLE, new_schema) for _ in range(3))),
            timeout=30,
        )
        assert await _version_in(database, new_schema) == ["0001"]

    async def test_bad_schema_name_is_refused_before_connecting(self, database: Database) -> None:
        with pytest.raises(ValueError, match="invalid schema name"):
            await upgrade_to_head(database.url, EXAMPLE, 'x"; DROP TABLE y; --')


class TestMessagingTablesMigration:
    async def test_migrated_tables_match_the_runtime_definition(
        self, database: Database, new_schema: str
    ) -> None:
        await upgrade_to_head(database.url, EXAMPLE, new_schema)
        expected = MetaData(schema=new_schema)
        messaging_tables(expected)

        def diff(conn: Connection) -> list[Any]:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, type_, _: type_ != "schema" or name == new_schema,
                    "include_object": lambda _o, name, type_, *_: name != "alembic_version",
                },
            )
            return list(compare_metadata(context, expected))

        async with database.engine.connect() as conn:
            assert await conn.run_sync(diff) == []


class TestEnvironmentFromTheCommandLine:
    async def test_env_connects_by_url_when_no_connection_is_given(
        self, database: Database, new_schema: str
    ) -> None:
        # What `alembic upgrade head` does: env.py gets only sqlalchemy.url and
        # runs its own event loop, so it runs in a thread here.
        config = Config()
        config.set_main_option("script_location", str(EXAMPLE))
        config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
        config.attributes[SCHEMA_ATTRIBUTE] = new_schema
        await asyncio.wait_for(asyncio.to_thread(command.upgrade, config, "head"), timeout=30)
        assert await _version_in(database, new_schema) == ["0001"]
        await asyncio.wait_for(asyncio.to_thread(command.downgrade, config, "base"), timeout=30)
        assert await _tables_in(database, new_schema) == {"alembic_version"}

    async def test_replicas_migrating_one_schema_at_once_all_succeed(
        self, database: Database, new_schema: str, tmp_path: Path
    ) -> None:
        # Separate processes (replicas starting together) meet only in PostgreSQL:
        # the advisory lock must serialise them.
        ini = tmp_path / "alembic.ini"
        url = database.url.replace("%", "%%")
        ini.write_text(f"[alembic]\nscript_location = {EXAMPLE}\nsqlalchemy.url = {url}\n")
        alembic = [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"schema={new_schema}"]
        processes = [
            await asyncio.create_subprocess_exec(
                *alembic,
                "upgrade",
                "head",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in processes)), timeout=50
        )
        assert [p.returncode for p in processes] == [0, 0, 0], [r[1][-800:] for r in results]
        assert await _version_in(database, new_schema) == ["0001"]
