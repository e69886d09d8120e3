"""registry core: models, model_versions, aliases, and the messaging tables

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
        "models",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", JSONB, nullable=False, server_default="{}"),
        sa.Column("last_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("team", "name", name="uq_models_team_name"),
        schema=schema,
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "model_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("framework", sa.Text, nullable=False),
        sa.Column("artifact", JSONB, nullable=False),
        sa.Column("lineage", JSONB, nullable=False),
        sa.Column("signature", JSONB, nullable=True),
        sa.Column("tags", JSONB, nullable=False, server_default="{}"),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("lifecycle", JSONB, nullable=False, server_default="{}"),
        sa.Column("ci_run_id", sa.Text, nullable=True),
        sa.Column("registered_by", sa.Text, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        sa.UniqueConstraint("model_id", "ci_run_id", name="uq_model_versions_ci_run"),
        schema=schema,
    )
    op.create_index(
        "ix_model_versions_team_created",
        "model_versions",
        ["team", "created_at", "id"],
        schema=schema,
    )
    op.create_index(
        "ix_model_versions_tags",
        "model_versions",
        ["tags"],
        schema=schema,
        postgresql_using="gin",
    )
    op.create_table(
        "aliases",
        sa.Column(
            "model_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    for table in ("aliases", "model_versions", "models", "inbox", "outbox_sequence", "outbox"):
        op.drop_table(table, schema=schema)
