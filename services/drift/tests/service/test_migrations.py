"""The first revision creates exactly the tables the store defines (nothing to autogenerate)."""

from __future__ import annotations

from mlplane_drift.store import DriftTables
from mlplane_runtime.db import Database
from mlplane_testing.migrations import assert_schema_matches


async def test_the_migrated_schema_matches_the_store_tables(
    tables: DriftTables, database: Database
) -> None:
    await assert_schema_matches(database, tables.metadata)
