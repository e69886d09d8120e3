"""The gateway's migrations create exactly the tables `tables.define_tables` defines
(the console's sessions included): nothing left to autogenerate."""

from __future__ import annotations

from mlplane_gateway.tables import GatewayTables
from mlplane_runtime.db import Database
from mlplane_testing.migrations import assert_schema_matches


async def test_the_migrated_schema_matches_the_gateway_tables(
    tables: GatewayTables, gateway_database: Database
) -> None:
    await assert_schema_matches(gateway_database, tables.metadata)
