"""The deployer's tables, defined per schema.

Tests migrate the service into a throwaway schema and run the same code there;
`metadata` (schema `deployer`) is what the plug-in uses in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "deployer"

# Phases in which a deployment still holds its model, version and environment.
ACTIVE_PHASES_SQL = "phase IN ('pending', 'committed', 'syncing', 'healthy', 'degraded')"


@dataclass(frozen=True, slots=True)
class DeployerTables:
    metadata: MetaData
    policies: Table
    model_versions: Table
    scans: Table
    aliases: Table
    deployments: Table
    history: Table
    approvals: Table
    decisions: Table
    messaging: MessagingTables


def _timestamp(name: str, *, nullable: bool = False) -> Column[object]:
    if nullable:
        return Column(name, DateTime(timezone=True), nullable=True)
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


def define_tables(schema: str) -> DeployerTables:
    """The deployer's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    policies = Table(
        "policies",
        metadata,
        Column("team", Text, nullable=False),
        Column("version", Integer, nullable=False),
        # The environments and their rules (domain/policy_document.py).
        Column("document", JSONB, nullable=False),
        Column("created_by", Text, nullable=False),
        _timestamp("created_at"),
        PrimaryKeyConstraint("team", "version", name="pk_policies"),
    )
    # What the deployer learnt of each version from the registry and the builder.
    model_versions = Table(
        "model_versions",
        metadata,
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("image_repository", Text, nullable=True),
        Column("digest", Text, nullable=True),
        Column("built_at", DateTime(timezone=True), nullable=True),
        Column("commit_sha", Text, nullable=True),
        Column("ci_run_url", Text, nullable=True),
        Column("registered_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("team", "model", "version", name="pk_model_versions"),
    )
    scans = Table(
        "scans",
        metadata,
        Column("team", Text, nullable=False),
        Column("digest", Text, nullable=False),
        Column("verdict", Text, nullable=False),
        Column("policy_version", Integer, nullable=False),
        Column("scanned_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("team", "digest", name="pk_scans"),
    )
    aliases = Table(
        "aliases",
        metadata,
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("alias", Text, nullable=False),
        Column("version", Integer, nullable=True),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("team", "model", "alias", name="pk_aliases"),
    )
    deployments = Table(
        "deployments",
        metadata,
        Column("id", Uuid, primary_key=True),
        # Orders listings; never changes, so pages are stable while deployments arrive.
        Column("seq", BigInteger, Identity(), nullable=False, unique=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("environment", Text, nullable=False),
        Column("image_repository", Text, nullable=False),
        Column("digest", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("action", Text, nullable=False),
        Column("reason", Text, nullable=True),
        Column("idempotency_key", Text, nullable=True),
        Column("phase", Text, nullable=False),
        Column("policy_version", Integer, nullable=False),
        Column("approvals", JSONB, nullable=False, server_default="[]"),
        Column("work", Text, nullable=False),
        Column("work_state", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("not_before", DateTime(timezone=True), nullable=True),
        Column("lease_owner", Text, nullable=True),
        Column("lease_expires_at", DateTime(timezone=True), nullable=True),
        Column("message", Text, nullable=True),
        Column("change_id", Text, nullable=False),
        Column("gitops_commit", Text, nullable=True),
        Column("rollback_commit", Text, nullable=True),
        Column("rolled_back_by", Text, nullable=True),
        # W3C trace context of what asked for it: the job's span continues it.
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        # Canary steps fixed at the request (the policy's then), and the step committed.
        Column("canary_weights", JSONB, nullable=False, server_default="[]"),
        Column("canary_step", Integer, nullable=True),
        # Since when it waits for health: its deadline counts from here on every replica.
        _timestamp("waiting_since", nullable=True),
        # The Application resourceVersion last recorded: replicas lagging behind are ignored.
        Column("observed_version", BigInteger, nullable=True),
        Index("ix_deployments_team_seq", "team", "seq"),
        Index(
            "ix_deployments_in_environment",
            "team",
            "model",
            "environment",
            "seq",
            postgresql_where=text("gitops_commit IS NOT NULL"),
        ),
        # The same request twice is one deployment: one active per version and environment.
        Index(
            "uq_deployments_active",
            "team",
            "model",
            "version",
            "environment",
            unique=True,
            postgresql_where=text(ACTIVE_PHASES_SQL),
        ),
        Index(
            "uq_deployments_idempotency_key",
            "team",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "ix_deployments_claimable",
            "work_state",
            "seq",
            postgresql_where=text("work_state IN ('queued', 'running')"),
        ),
    )
    history = Table(
        "deployment_history",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("deployment_id", Uuid, nullable=False),
        _timestamp("at"),
        Column("kind", Text, nullable=False),
        Column("caused_by", Text, nullable=False),
        Column("phase", Text, nullable=True),
        Column("previous_phase", Text, nullable=True),
        Column("detail", Text, nullable=True),
        Column("policy_version", Integer, nullable=True),
        Column("reasons", JSONB, nullable=False, server_default="[]"),
        Index("ix_deployment_history_deployment", "deployment_id", "id"),
    )
    approvals = Table(
        "approvals",
        metadata,
        Column("deployment_id", Uuid, nullable=False),
        Column("principal", Text, nullable=False),
        Column("scopes", JSONB, nullable=False),
        _timestamp("approved_at"),
        PrimaryKeyConstraint("deployment_id", "principal", name="pk_approvals"),
    )
    # Every policy decision, allowed or denied, and the policy version it was made under.
    decisions = Table(
        "decisions",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("environment", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("deployment_id", Uuid, nullable=True),
        Column("policy_version", Integer, nullable=False),
        Column("allowed", Boolean, nullable=False),
        Column("reasons", JSONB, nullable=False, server_default="[]"),
        Column("source", Text, nullable=False),
        _timestamp("decided_at"),
        Index("ix_decisions_team_id", "team", "id"),
    )
    return DeployerTables(
        metadata,
        policies,
        model_versions,
        scans,
        aliases,
        deployments,
        history,
        approvals,
        decisions,
        messaging_tables(metadata),
    )


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
