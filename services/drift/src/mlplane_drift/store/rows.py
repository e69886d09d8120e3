"""What the repository reads back: plain records, no SQLAlchemy objects leak out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


def _of(cls: Any, row: Any) -> Any:
    return cls(**{name: getattr(row, name) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class ReferenceRow:
    team: str
    model: str
    version: int
    profile_uri: str
    source: str
    rows: int
    features: list[dict[str, Any]]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReferenceRow:
        return _of(cls, row)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class WindowRow:
    id: int
    team: str
    model: str
    version: int
    environment: str
    state: str
    profile_uri: str
    sample_count: int
    max_count: int | None
    opened_at: datetime
    closes_at: datetime | None
    closed_at: datetime | None
    attempts: int
    error: str | None
    traceparent: str | None
    tracestate: str | None

    @classmethod
    def of(cls, row: Any) -> WindowRow:
        return _of(cls, row)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class ReportRow:
    id: UUID
    window_id: int
    team: str
    model: str
    version: int
    environment: str
    window_start: datetime
    window_end: datetime
    sample_size: int
    reference_size: int
    drift_share: float
    dataset_drifted: bool
    severity: str | None
    fired: bool
    report_uri: str
    document: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReportRow:
        return _of(cls, row)  # type: ignore[no-any-return]
