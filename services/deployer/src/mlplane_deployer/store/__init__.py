"""The deployer's storage: tables (per schema) and `DeploymentStore`. All its SQL lives here."""

from mlplane_deployer.store.repository import (
    DeploymentFilter,
    DeploymentStore,
    StoredPolicy,
    VersionFacts,
)
from mlplane_deployer.store.tables import (
    SCHEMA,
    TABLES,
    DeployerTables,
    define_tables,
    metadata,
)

__all__ = [
    "SCHEMA",
    "TABLES",
    "DeployerTables",
    "DeploymentFilter",
    "DeploymentStore",
    "StoredPolicy",
    "VersionFacts",
    "define_tables",
    "metadata",
]
