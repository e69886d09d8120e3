"""The scanner's storage: its tables per schema and the repository holding all its SQL."""

from mlplane_scanner.store.repository import DONE, ERROR, PENDING, RUNNING, ScanStore
from mlplane_scanner.store.rows import EvaluationRow, ScanRow
from mlplane_scanner.store.tables import SCHEMA, TABLES, ScannerTables, define_tables, metadata

__all__ = [
    "DONE",
    "ERROR",
    "PENDING",
    "RUNNING",
    "SCHEMA",
    "TABLES",
    "EvaluationRow",
    "ScanRow",
    "ScanStore",
    "ScannerTables",
    "define_tables",
    "metadata",
]
