"""verified_artifacts: the uploads the registry completed and checked

A version's artifact in the registry's own store must be one of these (for the same
team and model): before, any URI was accepted, `file://` paths of the host included.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.create_table(
        "verified_artifacts",
        sa.Column("uri", sa.Text, primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column(
            "verified_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=schema,
    )


def downgrade() -> None:
    op.drop_table("verified_artifacts", schema=migration_schema())
