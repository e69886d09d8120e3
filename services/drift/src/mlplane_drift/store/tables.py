"""The drift service's tables, defined per schema (tests migrate into throwaway ones)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "drift"

OPEN_WINDOW = text("state = 'open'")


@dataclass(frozen=True, slots=True)
class DriftTables:
    metadata: MetaData
    versions: Table
    references: Table
    window_policies: Table
    windows: Table
    partials: Table
    reports: Table
    alerts: Table
    reference_samples: Table
    messaging: MessagingTables


def define_tables(schema: str) -> DriftTables:
    """The drift service's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    versions = Table(
        # What model.version.registered taught: which versions exist, and whose they are.
        "model_versions",
        metadata,
        Column("team", Text, primary_key=True),
        Column("model", Text, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("registered_at", DateTime(timezone=True), nullable=False),
    )
    references = Table(
        # One reference profile per model version; replaced by a new PUT. The profile's
        # bytes are in object storage under `profile_uri` (a new key per profile).
        "reference_profiles",
        metadata,
        Column("team", Text, primary_key=True),
        Column("model", Text, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("profile_uri", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("rows", BigInteger, nullable=False),
        Column("features", JSONB, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    window_policies = Table(
        # How a model's windows close in one environment (settings give the default).
        "window_policies",
        metadata,
        Column("team", Text, primary_key=True),
        Column("model", Text, primary_key=True),
        Column("environment", Text, primary_key=True),
        Column("max_count", BigInteger, nullable=True),
        Column("max_seconds", Float, nullable=True),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    windows = Table(
        # A window of samples of one version in one environment: open while intake adds
        # to it, closed when full or due, judged by a verdict job (leased), then done.
        "windows",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("environment", Text, nullable=False),
        Column("state", Text, nullable=False),  # open | closed | judging | done | failed
        # The profile every partial summary of the window was built against.
        Column("profile_uri", Text, nullable=False),
        Column("sample_count", BigInteger, nullable=False, server_default="0"),
        Column("max_count", BigInteger, nullable=True),
        Column("opened_at", DateTime(timezone=True), nullable=False),
        Column("closes_at", DateTime(timezone=True), nullable=True),
        Column("closed_at", DateTime(timezone=True), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("error", Text, nullable=True),
        # W3C trace context of the intake that closed it: the verdict job continues it.
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        Index(
            "uq_windows_open",
            "team",
            "model",
            "version",
            "environment",
            unique=True,
            postgresql_where=OPEN_WINDOW,
        ),
        Index("ix_windows_state", "state", "closes_at"),
    )
    partials = Table(
        # One row per intake batch: its window summary, merged when the window is judged.
        "window_partials",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "window_id",
            BigInteger,
            ForeignKey(f"{schema}.windows.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("sample_count", BigInteger, nullable=False),
        Column("summary", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_window_partials_window", "window_id"),
    )
    reports = Table(
        "reports",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("window_id", BigInteger, nullable=False, unique=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("environment", Text, nullable=False),
        Column("window_start", DateTime(timezone=True), nullable=False),
        Column("window_end", DateTime(timezone=True), nullable=False),
        Column("sample_size", BigInteger, nullable=False),
        Column("reference_size", BigInteger, nullable=False),
        Column("drift_share", Float, nullable=False),
        Column("dataset_drifted", Boolean, nullable=False),
        Column("severity", Text, nullable=True),
        Column("fired", Boolean, nullable=False),
        Column("report_uri", Text, nullable=False),
        Column("document", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_reports_team_model", "team", "model", "created_at"),
    )
    alerts = Table(
        # The hysteresis of one version in one environment, carried from window to window.
        "alert_states",
        metadata,
        Column("team", Text, primary_key=True),
        Column("model", Text, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("environment", Text, primary_key=True),
        Column("state", JSONB, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    reference_samples = Table(
        # The first samples of a version without a reference, kept (Arrow IPC) until
        # there are enough to build its profile from (`MLPLANE_DRIFT_REFERENCE_FROM_SAMPLES`).
        "reference_samples",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("rows", BigInteger, nullable=False),
        Column("data", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_reference_samples_version", "team", "model", "version"),
    )
    return DriftTables(
        metadata,
        versions,
        references,
        window_policies,
        windows,
        partials,
        reports,
        alerts,
        reference_samples,
        messaging_tables(metadata),
    )


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
