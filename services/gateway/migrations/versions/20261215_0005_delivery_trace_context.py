"""delivery_trace_context: each delivery keeps the trace context that recorded it

`subscription_deliveries.traceparent` / `tracestate` are the W3C context of the
consumer span that recorded the event for the subscription; the dispatcher runs
each try in a span whose parent is that context, so a delivery continues the
event's trace. Existing rows have none (their tries start traces of their own).

Revision ID: 0005_delivery_trace_context
Revises: 0004_subscription_sink_key
Create Date: 2026-12-15
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0005_delivery_trace_context"
down_revision = "0004_subscription_sink_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    for column in ("traceparent", "tracestate"):
        op.add_column(
            "subscription_deliveries", sa.Column(column, sa.Text, nullable=True), schema=schema
        )


def downgrade() -> None:
    schema = migration_schema()
    for column in ("tracestate", "traceparent"):
        op.drop_column("subscription_deliveries", column, schema=schema)
