"""The first revision creates exactly the tables the store defines (nothing to autogenerate)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from mlplane_builder.store import BuilderTables
from mlplane_runtime.db import Database
from sqlalchemy import Connection


async def test_the_migrated_schema_matches_the_store_tables(
    tables: BuilderTables, builder_database: Database
) -> None:
    schema = tables.metadata.schema

    def differences(connection: Connection) -> list[Any]:
        def only_this_schema(name: str | None, type_: str, parent_names: Any) -> bool:
            return type_ != "schema" or name == schema

        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": only_this_schema,
                "version_table_schema": schema,
            },
        )
        return list(compare_metadata(context, tables.metadata))

    async with builder_database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
