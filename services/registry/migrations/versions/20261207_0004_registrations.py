"""registrations: versions waiting for the registry to read and verify their artifact

A version created from MLflow with only a `source` starts `pending`
(`model_versions.registration`); its `registrations` row is the job the registration
worker leases, reads the artifact for, and deletes when the version is `ready` or
`failed`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.add_column(
        "model_versions",
        sa.Column("registration", sa.Text, nullable=False, server_default="ready"),
        schema=schema,
    )
    op.create_table(
        "registrations",
        sa.Column(
            "version_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("inputs", JSONB, nullable=False, server_default="{}"),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "due_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("tracestate", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=schema,
    )
    op.create_index("ix_registrations_due", "registrations", ["state", "due_at"], schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("registrations", schema=schema)
    op.drop_column("model_versions", "registration", schema=schema)
