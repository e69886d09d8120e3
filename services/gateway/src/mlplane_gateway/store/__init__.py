"""The gateway's tables and the repository holding all of its SQL."""

from mlplane_gateway.store.repository import GatewayStore
from mlplane_gateway.store.tables import SCHEMA, TABLES, GatewayTables, define_tables, metadata

__all__ = ["SCHEMA", "TABLES", "GatewayStore", "GatewayTables", "define_tables", "metadata"]
