"""The registry's storage: tables (per schema), the repository, search cursors.

All of the registry's SQL lives in this package.
"""

from mlplane_registry.store.mlflow_search import MlflowSearchStore
from mlplane_registry.store.registrations import RegistrationJob, RegistrationStore
from mlplane_registry.store.repository import NewVersion, RegistryStore
from mlplane_registry.store.rows import new_etag
from mlplane_registry.store.search import Comparison, Cursor, Ordering, VersionFilter
from mlplane_registry.store.tables import SCHEMA, TABLES, RegistryTables, define_tables, metadata

__all__ = [
    "SCHEMA",
    "TABLES",
    "Comparison",
    "Cursor",
    "MlflowSearchStore",
    "NewVersion",
    "Ordering",
    "RegistrationJob",
    "RegistrationStore",
    "RegistryStore",
    "RegistryTables",
    "VersionFilter",
    "define_tables",
    "metadata",
    "new_etag",
]
