"""drift core: versions, reference profiles, window policies, windows and their partial
summaries, reports, alert (hysteresis) states, samples kept to build a reference from

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import create_messaging_tables_op, migration_schema
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _at(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    schema = migration_schema()
    create_messaging_tables_op(op, schema)
    op.create_table(
        "model_versions",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        _at("registered_at", nullable=False),
        sa.PrimaryKeyConstraint("team", "model", "version", name="pk_model_versions"),
        schema=schema,
    )
    op.create_table(
        "reference_profiles",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("profile_uri", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("features", JSONB, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("team", "model", "version", name="pk_reference_profiles"),
        schema=schema,
    )
    op.create_table(
        "window_policies",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("max_count", sa.BigInteger, nullable=True),
        sa.Column("max_seconds", sa.Float, nullable=True),
        sa.Column("updated_by", sa.Text, nullable=False),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("team", "model", "environment", name="pk_window_policies"),
        schema=schema,
    )
    op.create_table(
        "windows",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("profile_uri", sa.Text, nullable=False),
        sa.Column("sample_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("max_count", sa.BigInteger, nullable=True),
        _at("opened_at", nullable=False),
        _at("closes_at"),
        _at("closed_at"),
        _at("lease_until"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("tracestate", sa.Text, nullable=True),
        schema=schema,
    )
    op.create_index(
        "uq_windows_open",
        "windows",
        ["team", "model", "version", "environment"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
        schema=schema,
    )
    op.create_index("ix_windows_state", "windows", ["state", "closes_at"], schema=schema)
    op.create_table(
        "window_partials",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "window_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.windows.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sample_count", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.LargeBinary, nullable=False),
        _now("created_at"),
        schema=schema,
    )
    op.create_index("ix_window_partials_window", "window_partials", ["window_id"], schema=schema)
    op.create_table(
        "reports",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("window_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        _at("window_start", nullable=False),
        _at("window_end", nullable=False),
        sa.Column("sample_size", sa.BigInteger, nullable=False),
        sa.Column("reference_size", sa.BigInteger, nullable=False),
        sa.Column("drift_share", sa.Float, nullable=False),
        sa.Column("dataset_drifted", sa.Boolean, nullable=False),
        sa.Column("severity", sa.Text, nullable=True),
        sa.Column("fired", sa.Boolean, nullable=False),
        sa.Column("report_uri", sa.Text, nullable=False),
        sa.Column("document", JSONB, nullable=False),
        _now("created_at"),
        schema=schema,
    )
    op.create_index(
        "ix_reports_team_model", "reports", ["team", "model", "created_at"], schema=schema
    )
    op.create_table(
        "alert_states",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("state", JSONB, nullable=False),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("team", "model", "version", "environment", name="pk_alert_states"),
        schema=schema,
    )
    op.create_table(
        "reference_samples",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        _now("created_at"),
        schema=schema,
    )
    op.create_index(
        "ix_reference_samples_version",
        "reference_samples",
        ["team", "model", "version"],
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in (
        "reference_samples",
        "alert_states",
        "reports",
        "window_partials",
        "windows",
        "window_policies",
        "reference_profiles",
        "model_versions",
        "inbox",
        "outbox_sequence",
        "outbox",
    ):
        op.drop_table(table, schema=schema)
