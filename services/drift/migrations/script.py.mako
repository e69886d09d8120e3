"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from alembic import op
from mlplane_runtime.migrations import migration_schema

${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    schema = migration_schema()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    schema = migration_schema()
    ${downgrades if downgrades else "pass"}
