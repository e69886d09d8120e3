"""subscriptions: subscriptions, subscription_events, subscription_deliveries

Revision ID: 0002_subscriptions
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002_subscriptions"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now(name: str) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    schema = migration_schema()
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("sink_url", sa.Text, nullable=False),
        sa.Column("types", ARRAY(sa.Text), nullable=False),
        sa.Column("subject_prefix", sa.Text, nullable=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False, server_default="binary"),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_by", sa.Text, nullable=False),
        _now("created_at"),
        schema=schema,
    )
    op.create_index("ix_subscriptions_team", "subscriptions", ["team", "created_at"], schema=schema)
    op.create_table(
        "subscription_events",
        sa.Column("position", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        _now("received_at"),
        sa.UniqueConstraint("source", "event_id", name="uq_subscription_events_source_id"),
        schema=schema,
    )
    op.create_index(
        "ix_subscription_events_team_position",
        "subscription_events",
        ["team", "position"],
        schema=schema,
    )
    op.create_table(
        "subscription_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Text,
            sa.ForeignKey(f"{schema}.subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "event_position",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.subscription_events.position", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("log", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        _now("created_at"),
        _now("updated_at"),
        sa.UniqueConstraint("subscription_id", "event_position", name="uq_subscription_deliveries"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')",
            name="ck_subscription_deliveries_status",
        ),
        schema=schema,
    )
    op.create_index(
        "ix_subscription_deliveries_due",
        "subscription_deliveries",
        ["next_attempt_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_subscription_deliveries_subscription",
        "subscription_deliveries",
        ["subscription_id", "status", "id"],
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_table("subscription_deliveries", schema=schema)
    op.drop_table("subscription_events", schema=schema)
    op.drop_table("subscriptions", schema=schema)
