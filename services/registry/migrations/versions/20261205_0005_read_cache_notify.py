"""read cache: every change of a model, a version or an alias NOTIFYs its team/model

Each worker's read cache (`mlplane_registry.read_cache`) LISTENs on
`mlplane_cache_<schema>` and drops what it holds of a model when that model, one of
its versions or one of its aliases changes. Triggers, so that every writer is
covered (the REST API, the MLflow API, the event handlers, the registration
worker) and the NOTIFY is part of the writing transaction: delivered at its commit,
never for a rollback. The payload is `<team>/<model>`; PostgreSQL folds repeats of
one payload within a transaction into one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("models", "model_versions", "aliases")


def cache_channel(schema: str) -> str:
    """The NOTIFY channel of the registry in `schema` (at most 63 bytes, as PostgreSQL's)."""
    return f"mlplane_cache_{schema}"[:63]


def upgrade() -> None:
    schema = migration_schema()
    op.execute(
        f"""
        CREATE FUNCTION "{schema}".notify_cache() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            channel text := TG_ARGV[0];
            owner record;
        BEGIN
            IF TG_TABLE_NAME = 'models' THEN
                IF TG_OP <> 'INSERT' THEN
                    PERFORM pg_notify(channel, OLD.team || '/' || OLD.name);
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    PERFORM pg_notify(channel, NEW.team || '/' || NEW.name);
                END IF;
            ELSIF TG_TABLE_NAME = 'model_versions' THEN
                IF TG_OP <> 'INSERT' THEN
                    PERFORM pg_notify(channel, OLD.team || '/' || OLD.model);
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    PERFORM pg_notify(channel, NEW.team || '/' || NEW.model);
                END IF;
            ELSE
                -- An alias names its model by id; a model deleted with its aliases is
                -- gone here already, and its own trigger has notified.
                FOR owner IN
                    SELECT team, name FROM "{schema}".models
                    WHERE id = OLD.model_id OR id = NEW.model_id
                LOOP
                    PERFORM pg_notify(channel, owner.team || '/' || owner.name);
                END LOOP;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f'CREATE TRIGGER notify_cache AFTER INSERT OR UPDATE OR DELETE ON "{schema}".{table} '
            f"FOR EACH ROW EXECUTE FUNCTION \"{schema}\".notify_cache('{cache_channel(schema)}')"
        )


def downgrade() -> None:
    schema = migration_schema()
    for table in TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS notify_cache ON "{schema}".{table}')
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_cache()')
