"""The scanner's tables, defined per schema (tests migrate into throwaway ones)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "scanner"


@dataclass(frozen=True, slots=True)
class ScannerTables:
    metadata: MetaData
    policies: Table
    scans: Table
    findings: Table
    evaluations: Table
    deployed: Table
    state: Table
    messaging: MessagingTables


def define_tables(schema: str) -> ScannerTables:
    """The scanner's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    policies = Table(
        # One row per version: an edit never rewrites history, a verdict names its version.
        "policies",
        metadata,
        Column("team", Text, primary_key=True),
        Column("environment", Text, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("document", JSONB, nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    scans = Table(
        # One per image of a model version: a redelivered or repeated image.built finds it.
        "scans",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("model_version", Integer, nullable=False),
        Column("repository", Text, nullable=False),
        Column("digest", Text, nullable=False),
        Column("state", Text, nullable=False),  # pending | running | done | error
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("error", Text, nullable=True),
        Column("trivy_version", Text, nullable=True),
        Column("db_version", Text, nullable=True),
        Column("vulnerabilities_assessed", Boolean, nullable=True),
        Column("not_assessed_reason", Text, nullable=True),
        Column("report_uri", Text, nullable=True),
        Column("sbom_uri", Text, nullable=True),
        # What the last image.scanned said, so a rescan or re-evaluation emits only changes.
        Column("emitted_verdict", Text, nullable=True),
        Column("emitted_policy_version", Integer, nullable=True),
        Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("started_at", DateTime(timezone=True), nullable=True),
        Column("finished_at", DateTime(timezone=True), nullable=True),
        # W3C trace context of what asked for the (re)scan: the worker's span continues it.
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        UniqueConstraint(
            "team", "model", "model_version", "digest", name="uq_scans_version_digest"
        ),
        Index("ix_scans_claim", "state", "requested_at"),
        Index("ix_scans_team_digest", "team", "digest"),
    )
    findings = Table(
        "findings",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "scan_id",
            BigInteger,
            ForeignKey(f"{schema}.scans.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("kind", Text, nullable=False),
        Column("finding_id", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("title", Text, nullable=False),
        Column("target", Text, nullable=False),
        Column("package", Text, nullable=True),
        Column("installed_version", Text, nullable=True),
        Column("fixed_version", Text, nullable=True),
        Column("layer", Text, nullable=True),
        Index("ix_findings_scan", "scan_id"),
    )
    evaluations = Table(
        # The newest verdict of a scan per environment (the deployer asks "may it go to dev?").
        "evaluations",
        metadata,
        Column(
            "scan_id",
            BigInteger,
            ForeignKey(f"{schema}.scans.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("environment", Text, primary_key=True),
        Column("policy_version", Integer, nullable=False),
        Column("verdict", Text, nullable=False),
        Column("reasons", JSONB, nullable=False),
        Column("counts", JSONB, nullable=False),
        Column("suppressed", JSONB, nullable=False),
        Column("evaluated_at", DateTime(timezone=True), nullable=False),
    )
    deployed = Table(
        # What serves where, learnt from deployment.status_changed: what a new DB rescans.
        "deployed_images",
        metadata,
        Column("team", Text, primary_key=True),
        Column("environment", Text, primary_key=True),
        Column("model", Text, primary_key=True),
        Column("model_version", Integer, nullable=False),
        Column("repository", Text, nullable=False),
        Column("digest", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    )
    state = Table(
        # Small facts the service keeps between runs (the last vulnerability DB seen).
        "service_state",
        metadata,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return ScannerTables(
        metadata,
        policies,
        scans,
        findings,
        evaluations,
        deployed,
        state,
        messaging_tables(metadata),
    )


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
