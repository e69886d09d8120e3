"""The registry's storage: tables (per schema), the repository, search cursors.

All of the registry's SQL lives in this package.
"""

from mlplane_registry.store.repository import RegistryStore
from mlplane_registry.store.rows import new_etag
from mlplane_registry.store.search import Cursor, VersionFilter
from mlplane_registry.store.tables import SCHEMA, TABLES, RegistryTables, define_tables, metadata

__all__ = [
    "SCHEMA",
    "TABLES",
    "Cursor",
    "RegistryStore",
    "RegistryTables",
    "VersionFilter",
    "define_tables",
    "metadata",
    "new_etag",
]
