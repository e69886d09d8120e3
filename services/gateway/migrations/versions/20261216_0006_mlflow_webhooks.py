"""mlflow_webhooks: subscriptions that are MLflow model-registry webhooks

A subscription in mode `mlflow` is an MLflow webhook (`/api/2.0/mlflow/webhooks`):
its `name`, `description`, the MLflow events it wants (`mlflow_events`, e.g.
`model_version.created`) and when it last changed. Other subscriptions leave them null.

Revision ID: 0006_mlflow_webhooks
Revises: 0005_delivery_trace_context
Create Date: 2026-12-16
"""

import sqlalchemy as sa
from alembic import op
from mlplane_runtime.migrations import migration_schema
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0006_mlflow_webhooks"
down_revision = "0005_delivery_trace_context"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("subscriptions", sa.Column("name", sa.Text, nullable=True), schema=schema)
    op.add_column("subscriptions", sa.Column("description", sa.Text, nullable=True), schema=schema)
    op.add_column(
        "subscriptions", sa.Column("mlflow_events", ARRAY(sa.Text), nullable=True), schema=schema
    )
    op.add_column(
        "subscriptions",
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for column in ("updated_at", "mlflow_events", "description", "name"):
        op.drop_column("subscriptions", column, schema=schema)
