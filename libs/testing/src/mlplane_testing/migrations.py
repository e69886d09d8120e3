"""The check every service's migrations must pass: they build exactly the store's tables.

A service's `tests/integration/test_migrations.py` migrates its history into a fresh
schema (`mlplane_testing.database.migrated_schema`) and calls
`assert_schema_matches(database, tables.metadata)`.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from mlplane_runtime.db import Database
from sqlalchemy import Connection, MetaData


async def schema_differences(database: Database, metadata: MetaData) -> list[Any]:
    """What `alembic revision --autogenerate` would write to make the database's schema
    `metadata.schema` hold exactly `metadata`'s tables: an empty list when it does.

    Only that schema is compared, and its own `alembic_version` table is not counted.
    Raises `ValueError` when `metadata` names no schema.
    """
    schema = metadata.schema
    if schema is None:
        raise ValueError("the metadata names no schema: nothing to compare it with")

    def only_this_schema(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name == schema

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": only_this_schema,
                "version_table_schema": schema,
            },
        )
        return list(compare_metadata(context, metadata))

    async with database.engine.connect() as connection:
        return await connection.run_sync(differences)


async def assert_schema_matches(database: Database, metadata: MetaData) -> None:
    """Fail (AssertionError listing the differences) unless the migrated schema
    `metadata.schema` holds exactly `metadata`'s tables, as Alembic's autogenerate
    compares them (tables, columns and their types, indexes, unique and foreign keys).
    """
    differences = await schema_differences(database, metadata)
    assert differences == [], f"migrations and tables differ in {metadata.schema}: {differences}"
