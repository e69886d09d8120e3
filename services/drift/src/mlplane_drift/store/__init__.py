"""The drift service's storage: its tables per schema and the repository holding all its SQL."""

from mlplane_drift.store.repository import CLOSED, DONE, FAILED, JUDGING, OPEN, DriftStore
from mlplane_drift.store.rows import ReferenceRow, ReportRow, WindowRow
from mlplane_drift.store.tables import SCHEMA, TABLES, DriftTables, define_tables, metadata

__all__ = [
    "CLOSED",
    "DONE",
    "FAILED",
    "JUDGING",
    "OPEN",
    "SCHEMA",
    "TABLES",
    "DriftStore",
    "DriftTables",
    "ReferenceRow",
    "ReportRow",
    "WindowRow",
    "define_tables",
    "metadata",
]
