"""The builder's storage: tables (per schema) and the repository of build records.

All of the builder's SQL lives in this package.
"""

from mlplane_builder.store.repository import BuildFilter, BuildStore
from mlplane_builder.store.tables import SCHEMA, TABLES, BuilderTables, define_tables, metadata

__all__ = [
    "SCHEMA",
    "TABLES",
    "BuildFilter",
    "BuildStore",
    "BuilderTables",
    "define_tables",
    "metadata",
]
