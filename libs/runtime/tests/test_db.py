"""Database: URL normalisation, schemas, ping, against the real PostgreSQL."""

from __future__ import annotations

import socket
from uuid import uuid4

import pytest
from mlplane_runtime.db import Database, asyncpg_url, create_database, libpq_url
from sqlalchemy import text


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
            ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
            ("postgresql://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
            (
                "postgresql://postgres:@/postgres?host=/run/pg",
                "postgresql+asyncpg://postgres:@/postgres?host=%2Frun%2Fpg",
            ),
        ],
    )
    def test_postgres_urls_become_asyncpg_urls(self, url: str, expected: str) -> None:
        assert asyncpg_url(url) == expected

    def test_raw_connection_url_speaks_libpq(self) -> None:
        assert libpq_url("postgresql+asyncpg://u@h/d?ssl=require") == (
            "postgresql://u@h/d?sslmode=require"
        )

    @pytest.mark.parametrize("url", ["mysql://u@h/d", "postgresql://", "::"])
    def test_other_urls_are_refused(self, url: str) -> None:
        with pytest.raises(ValueError, match="database URL"):
            asyncpg_url(url)


class TestSchemas:
    async def test_ensure_schema_is_idempotent_and_drop_removes_it(
        self, database: Database
    ) -> None:
        name = f"t_{uuid4().hex[:10]}"
        try:
            await database.ensure_schema(name)
            await database.ensure_schema(name)
            assert await _schema_exists(database, name)
        finally:
            await database.drop_schema(name)
        assert not await _schema_exists(database, name)

    @pytest.mark.parametrize("name", ["Registry", "a-b", 'x"; drop', "", "a" * 64])
    async def test_names_that_need_quoting_are_refused(self, database: Database, name: str) -> None:
        with pytest.raises(ValueError, match="invalid schema name"):
            await database.ensure_schema(name)


class TestPing:
    async def test_ping_answers_true_when_the_database_answers(self, database: Database) -> None:
        assert await database.ping() is True

    async def test_ping_answers_false_when_nothing_listens(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # The port was free a moment ago and nothing listens on it now.
        unreachable = create_database(f"postgresql://postgres@127.0.0.1:{port}/test")
        try:
            assert await unreachable.ping(timeout_s=5) is False
        finally:
            await unreachable.dispose()

    async def test_application_name_labels_the_connections(self, database_url: str) -> None:
        app = f"dbtest-{uuid4().hex[:8]}"
        named = create_database(database_url, application_name=app)
        try:
            async with named.engine.connect() as conn:
                shown = await conn.execute(text("SELECT current_setting('application_name')"))
                assert shown.scalar() == app
        finally:
            await named.dispose()


async def _schema_exists(database: Database, name: str) -> bool:
    async with database.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": name}
        )
        return found.first() is not None
