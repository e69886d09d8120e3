"""The shared migration check: silent when migrations and tables agree, loud when not."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlplane_runtime.db import Database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_testing.database import migrated_schema
from mlplane_testing.migrations import assert_schema_matches, schema_differences
from sqlalchemy import Column, MetaData, Table, Text

EXAMPLE = Path(__file__).parent.parent / "fixtures" / "migrations_example"


class TestAssertSchemaMatches:
    async def test_passes_when_the_migrations_build_exactly_the_tables(
        self, database: Database
    ) -> None:
        async with migrated_schema(database, EXAMPLE) as schema:
            metadata = MetaData(schema=schema)
            messaging_tables(metadata)

            await assert_schema_matches(database, metadata)

    async def test_fails_naming_a_table_the_migrations_do_not_create(
        self, database: Database
    ) -> None:
        async with migrated_schema(database, EXAMPLE) as schema:
            metadata = MetaData(schema=schema)
            messaging_tables(metadata)
            Table("models", metadata, Column("name", Text, primary_key=True))

            with pytest.raises(AssertionError, match="models"):
                await assert_schema_matches(database, metadata)

    async def test_tables_of_other_schemas_are_not_compared(self, database: Database) -> None:
        async with (
            migrated_schema(database, EXAMPLE) as schema,
            migrated_schema(database, EXAMPLE) as _other,
        ):
            metadata = MetaData(schema=schema)
            messaging_tables(metadata)

            assert await schema_differences(database, metadata) == []


class TestSchemaDifferences:
    async def test_metadata_without_a_schema_is_refused(self, database: Database) -> None:
        with pytest.raises(ValueError, match="names no schema"):
            await schema_differences(database, MetaData())
