"""gateway core: api_keys, webhook_secrets, deliveries, and the messaging tables

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import create_messaging_tables_op, migration_schema
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created_at() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    schema = migration_schema()
    create_messaging_tables_op(op, schema)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("key_hash", sa.LargeBinary, nullable=False),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_index("ix_api_keys_team", "api_keys", ["team", "created_at"], schema=schema)
    op.create_table(
        "webhook_secrets",
        sa.Column("team", sa.Text, primary_key=True),
        sa.Column("nonce", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        _created_at(),
        schema=schema,
    )
    op.create_table(
        "deliveries",
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("team", "provider", "delivery_id", name="pk_deliveries"),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in (
        "deliveries",
        "webhook_secrets",
        "api_keys",
        "inbox",
        "outbox_sequence",
        "outbox",
    ):
        op.drop_table(table, schema=schema)
