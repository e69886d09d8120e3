"""builder core: builds, and the messaging tables

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


def upgrade() -> None:
    schema = migration_schema()
    create_messaging_tables_op(op, schema)
    op.create_table(
        "builds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("base_image", sa.Text, nullable=True),
        sa.Column("image_repository", sa.Text, nullable=True),
        sa.Column("image_digest", sa.Text, nullable=True),
        sa.Column("image_tag", sa.Text, nullable=True),
        sa.Column("layers", JSONB, nullable=False, server_default="[]"),
        sa.Column("bytes_uploaded", sa.BigInteger, nullable=True),
        sa.Column("image_size", sa.BigInteger, nullable=True),
        sa.Column("reused", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_kind", sa.Text, nullable=True),
        sa.Column("retryable", sa.Boolean, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("team", "model", "version", name="uq_builds_team_model_version"),
        schema=schema,
    )
    op.create_index("ix_builds_team_id", "builds", ["team", "id"], schema=schema)
    op.create_index(
        "ix_builds_claimable",
        "builds",
        ["status", "id"],
        schema=schema,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("builds", schema=schema)
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox_sequence", schema=schema)
    op.drop_table("outbox", schema=schema)
