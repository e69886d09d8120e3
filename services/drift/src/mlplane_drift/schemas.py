"""The drift service's HTTP request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from mlplane_contracts.events import MAX_DRIFT_SAMPLES, DriftSample, Environment
from mlplane_contracts.types import DnsLabel, Name, VersionNumber
from pydantic import BaseModel, ConfigDict, Field

from mlplane_drift.datasets import DatasetFormat
from mlplane_drift.profile import FeatureKind
from mlplane_drift.store import ReferenceRow, ReportRow, WindowRow


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` written in place, for a route that reads its
    body itself (so the model is not among the document's components)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(defs[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[!-~]+$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureIn(_In):
    name: Name
    kind: FeatureKind | None = None
    """numeric, categorical or binary; unset: inferred from the data's type."""


class ReferenceLocationIn(_In):
    """A dataset in object storage to build the reference profile from."""

    uri: str = Field(pattern=S3_URI, max_length=2048)
    format: DatasetFormat | None = None
    """parquet or csv; unset: from the name's suffix."""
    features: list[FeatureIn] | None = Field(default=None, min_length=1, max_length=2000)
    """The features to watch; unset: every column."""


class FeatureOut(BaseModel):
    name: str
    kind: str


class ReferenceOut(BaseModel):
    model: str
    version: int
    source: str
    rows: int
    features: list[FeatureOut]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: ReferenceRow) -> ReferenceOut:
        return cls(
            model=row.model,
            version=row.version,
            source=row.source,
            rows=row.rows,
            features=[FeatureOut(**feature) for feature in row.features],
            created_by=row.created_by,
            created_at=row.created_at,
        )


class WindowPolicyIn(_In):
    count: int | None = Field(default=None, ge=1, le=100_000_000)
    """Close a window once it holds this many samples."""
    seconds: float | None = Field(default=None, gt=0, le=366 * 86400)
    """Close a window this long after its first sample."""


class WindowPolicyOut(BaseModel):
    model: str
    environment: Environment
    count: int | None
    seconds: float | None
    default: bool
    """True when nothing is set for the model's environment (the service's default)."""


class SamplesIn(_In):
    """A batch of prediction samples of one model version in one environment. The team
    is the caller's."""

    model: DnsLabel
    version: VersionNumber
    environment: Environment
    samples: list[DriftSample] = Field(min_length=1, max_length=MAX_DRIFT_SAMPLES)


class ParquetSamplesIn(_In):
    """A Parquet file of samples in object storage (one column per feature)."""

    model: DnsLabel
    version: VersionNumber
    environment: Environment
    uri: str = Field(pattern=S3_URI, max_length=2048)


class IntakeOut(BaseModel):
    accepted: int
    window_id: int | None
    """None while the batch went to the reference (first samples)."""
    window_samples: int | None
    window_closed: bool
    reference_samples: int | None = None
    """Samples kept for the reference so far, while it is built from the first ones."""


class WindowOut(BaseModel):
    id: int
    environment: str
    state: str
    """open (taking samples), closed (waiting for its verdict), judging, done, or failed
    (it could not be judged: `error` says why)."""
    samples: int
    max_count: int | None
    opened_at: datetime
    closes_at: datetime | None
    closed_at: datetime | None
    attempts: int
    error: str | None

    @classmethod
    def of(cls, row: WindowRow) -> WindowOut:
        return cls(
            id=row.id,
            environment=row.environment,
            state=row.state,
            samples=row.sample_count,
            max_count=row.max_count,
            opened_at=row.opened_at,
            closes_at=row.closes_at,
            closed_at=row.closed_at,
            attempts=row.attempts,
            error=row.error,
        )


class WindowList(BaseModel):
    windows: list[WindowOut]


class ReportSummaryOut(BaseModel):
    id: UUID
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
    alert_fired: bool
    drifted_features: list[str]
    report_uri: str
    created_at: datetime

    @classmethod
    def of(cls, row: ReportRow) -> ReportSummaryOut:
        features: list[dict[str, Any]] = row.document.get("features", [])
        return cls(
            id=row.id,
            model=row.model,
            version=row.version,
            environment=row.environment,
            window_start=row.window_start,
            window_end=row.window_end,
            sample_size=row.sample_size,
            reference_size=row.reference_size,
            drift_share=row.drift_share,
            dataset_drifted=row.dataset_drifted,
            severity=row.severity,
            alert_fired=row.fired,
            drifted_features=[f["feature"] for f in features if f.get("drifted")],
            report_uri=row.report_uri,
            created_at=row.created_at,
        )


class ReportList(BaseModel):
    reports: list[ReportSummaryOut]
