"""indexes for reading a version by (team, model, number) and a model's versions in order

Without them both reads scanned every version of the team (the only index led with
`team`): at 10,000 versions bench/registry.py's get-version ran at half the speed it
had with 1,000.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = migration_schema()
    op.create_index(
        "ix_model_versions_team_model_version",
        "model_versions",
        ["team", "model", "version"],
        unique=True,
        schema=schema,
    )
    op.create_index(
        "ix_model_versions_team_model_created",
        "model_versions",
        ["team", "model", "created_at", "id"],
        schema=schema,
    )


def downgrade() -> None:
    schema = migration_schema()
    op.drop_index("ix_model_versions_team_model_created", "model_versions", schema=schema)
    op.drop_index("ix_model_versions_team_model_version", "model_versions", schema=schema)
