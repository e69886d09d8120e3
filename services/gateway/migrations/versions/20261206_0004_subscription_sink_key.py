"""subscription_sink_key: the server each sink reaches, for per-sink delivery concurrency

`subscriptions.sink_key` is `scheme://host:port` of the sink URL, as
`mlplane_gateway.subscriptions.domain.sink_key` computes it (so spellings of one
server share one key); the dispatcher claims no more deliveries for a server
already at its concurrency. Existing rows are filled in here.

Revision ID: 0004_subscription_sink_key
Revises: 0003_api_key_notify
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from mlplane_gateway.subscriptions.domain import sink_key
from mlplane_runtime.migrations import migration_schema

revision = "0004_subscription_sink_key"
down_revision = "0003_api_key_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.add_column("subscriptions", sa.Column("sink_key", sa.Text, nullable=True), schema=schema)
    bind = op.get_bind()
    rows = bind.execute(sa.text(f'SELECT id, sink_url FROM "{schema}".subscriptions')).all()
    for row in rows:
        bind.execute(
            sa.text(f'UPDATE "{schema}".subscriptions SET sink_key = :key WHERE id = :id'),
            {"key": sink_key(row.sink_url), "id": row.id},
        )
    op.alter_column("subscriptions", "sink_key", nullable=False, schema=schema)


def downgrade() -> None:
    op.drop_column("subscriptions", "sink_key", schema=migration_schema())
