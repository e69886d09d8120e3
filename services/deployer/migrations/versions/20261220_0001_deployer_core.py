"""deployer core: policies, what events taught, deployments, history, approvals, decisions

Revision ID: 0001
Revises:
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import create_messaging_tables_op, migration_schema
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = "phase IN ('pending', 'committed', 'syncing', 'healthy', 'degraded')"


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    schema = migration_schema()
    create_messaging_tables_op(op, schema)
    op.create_table(
        "policies",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("team", "version", name="pk_policies"),
        schema=schema,
    )
    op.create_table(
        "model_versions",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("image_repository", sa.Text, nullable=True),
        sa.Column("digest", sa.Text, nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("commit_sha", sa.Text, nullable=True),
        sa.Column("ci_run_url", sa.Text, nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("team", "model", "version", name="pk_model_versions"),
        schema=schema,
    )
    op.create_table(
        "scans",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team", "digest", name="pk_scans"),
        schema=schema,
    )
    op.create_table(
        "aliases",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team", "model", "alias", name="pk_aliases"),
        schema=schema,
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("image_repository", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("approvals", JSONB, nullable=False, server_default="[]"),
        sa.Column("work", sa.Text, nullable=False),
        sa.Column("work_state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("change_id", sa.Text, nullable=False),
        sa.Column("gitops_commit", sa.Text, nullable=True),
        sa.Column("rollback_commit", sa.Text, nullable=True),
        sa.Column("rolled_back_by", sa.Text, nullable=True),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("tracestate", sa.Text, nullable=True),
        _now("created_at"),
        _now("updated_at"),
        schema=schema,
    )
    op.create_index("ix_deployments_team_seq", "deployments", ["team", "seq"], schema=schema)
    op.create_index(
        "uq_deployments_active",
        "deployments",
        ["team", "model", "version", "environment"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index(
        "uq_deployments_idempotency_key",
        "deployments",
        ["team", "idempotency_key"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_deployments_claimable",
        "deployments",
        ["work_state", "seq"],
        schema=schema,
        postgresql_where=sa.text("work_state IN ('queued', 'running')"),
    )
    op.create_table(
        "deployment_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("deployment_id", sa.Uuid, nullable=False),
        _now("at"),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("caused_by", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=True),
        sa.Column("previous_phase", sa.Text, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("policy_version", sa.Integer, nullable=True),
        sa.Column("reasons", JSONB, nullable=False, server_default="[]"),
        schema=schema,
    )
    op.create_index(
        "ix_deployment_history_deployment",
        "deployment_history",
        ["deployment_id", "id"],
        schema=schema,
    )
    op.create_table(
        "approvals",
        sa.Column("deployment_id", sa.Uuid, nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("scopes", JSONB, nullable=False),
        _now("approved_at"),
        sa.PrimaryKeyConstraint("deployment_id", "principal", name="pk_approvals"),
        schema=schema,
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("deployment_id", sa.Uuid, nullable=True),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("reasons", JSONB, nullable=False, server_default="[]"),
        sa.Column("source", sa.Text, nullable=False),
        _now("decided_at"),
        schema=schema,
    )
    op.create_index("ix_decisions_team_id", "decisions", ["team", "id"], schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    for table in (
        "decisions",
        "approvals",
        "deployment_history",
        "deployments",
        "aliases",
        "scans",
        "model_versions",
        "policies",
        "inbox",
        "outbox_sequence",
        "outbox",
    ):
        op.drop_table(table, schema=schema)
