"""The first revision creates exactly the tables the store defines (nothing to autogenerate)."""

from __future__ import annotations

from mlplane_deployer.store import DeployerTables
from mlplane_runtime.db import Database
from mlplane_testing.migrations import assert_schema_matches


async def test_the_migrated_schema_matches_the_store_tables(
    tables: DeployerTables, deployer_database: Database
) -> None:
    await assert_schema_matches(deployer_database, tables.metadata)
