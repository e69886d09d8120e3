"""console_sessions: people signed in to the web console

One row per session: the SHA-256 of its opaque id (never the id), its CSRF token,
the principal it acts as (kind, id, API key id, team, scopes) and its expiry.

Revision ID: 0007_console_sessions
Revises: 0006_mlflow_webhooks
Create Date: 2026-12-17
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0007_console_sessions"
down_revision = "0006_mlflow_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.LargeBinary, primary_key=True),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_index(
        "ix_console_sessions_expires_at", "console_sessions", ["expires_at"], schema=schema
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_console_sessions_expires_at", "console_sessions", schema=schema)
    op.drop_table("console_sessions", schema=schema)
