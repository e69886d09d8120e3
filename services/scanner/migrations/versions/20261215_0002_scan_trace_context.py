"""scans keep the trace context of what asked for them (the worker continues it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-15
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("scans", sa.Column("traceparent", sa.Text, nullable=True), schema=schema)
    op.add_column("scans", sa.Column("tracestate", sa.Text, nullable=True), schema=schema)


def downgrade() -> None:
    schema = migration_schema()
    op.drop_column("scans", "tracestate", schema=schema)
    op.drop_column("scans", "traceparent", schema=schema)
