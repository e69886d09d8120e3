"""deployer cluster sync: canary steps, phase time, the Application version last recorded

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-21
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.add_column(
        "deployments",
        sa.Column("canary_weights", JSONB, nullable=False, server_default="[]"),
        schema=schema,
    )
    op.add_column("deployments", sa.Column("canary_step", sa.Integer, nullable=True), schema=schema)
    op.add_column(
        "deployments",
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.add_column(
        "deployments", sa.Column("observed_version", sa.BigInteger, nullable=True), schema=schema
    )
    op.create_index(
        "ix_deployments_in_environment",
        "deployments",
        ["team", "model", "environment", "seq"],
        schema=schema,
        postgresql_where=sa.text("gitops_commit IS NOT NULL"),
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_deployments_in_environment", "deployments", schema=schema)
    for column in ("observed_version", "waiting_since", "canary_step", "canary_weights"):
        op.drop_column("deployments", column, schema=schema)
