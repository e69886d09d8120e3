"""scanner core: policies, scans, findings, evaluations, deployed images, state, messaging

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import create_messaging_tables_op, migration_schema
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    schema = migration_schema()
    create_messaging_tables_op(op, schema)
    op.create_table(
        "policies",
        sa.Column("team", sa.Text, primary_key=True),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        schema=schema,
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("trivy_version", sa.Text, nullable=True),
        sa.Column("db_version", sa.Text, nullable=True),
        sa.Column("vulnerabilities_assessed", sa.Boolean, nullable=True),
        sa.Column("not_assessed_reason", sa.Text, nullable=True),
        sa.Column("report_uri", sa.Text, nullable=True),
        sa.Column("sbom_uri", sa.Text, nullable=True),
        sa.Column("emitted_verdict", sa.Text, nullable=True),
        sa.Column("emitted_policy_version", sa.Integer, nullable=True),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "team", "model", "model_version", "digest", name="uq_scans_version_digest"
        ),
        schema=schema,
    )
    op.create_index("ix_scans_claim", "scans", ["state", "requested_at"], schema=schema)
    op.create_index("ix_scans_team_digest", "scans", ["team", "digest"], schema=schema)
    op.create_table(
        "findings",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "scan_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.scans.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("finding_id", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("package", sa.Text, nullable=True),
        sa.Column("installed_version", sa.Text, nullable=True),
        sa.Column("fixed_version", sa.Text, nullable=True),
        sa.Column("layer", sa.Text, nullable=True),
        schema=schema,
    )
    op.create_index("ix_findings_scan", "findings", ["scan_id"], schema=schema)
    op.create_table(
        "evaluations",
        sa.Column(
            "scan_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.scans.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("suppressed", JSONB, nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_table(
        "deployed_images",
        sa.Column("team", sa.Text, primary_key=True),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_table(
        "service_state",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in (
        "service_state",
        "deployed_images",
        "evaluations",
        "findings",
        "scans",
        "policies",
        "inbox",
        "outbox_sequence",
        "outbox",
    ):
        op.drop_table(table, schema=schema)
