"""api_key_notify: NOTIFY when an API key is revoked, changed or deleted

Gateways keep verified keys in memory and drop one the moment this says so, so
revocation takes effect at once on every gateway process. A trigger rather than
a NOTIFY in the revoking code: a key revoked or deleted by any path (an operator
in psql included) is announced in the very transaction that changes it.

Revision ID: 0003_api_key_notify
Revises: 0002_subscriptions
Create Date: 2026-12-03
"""

from alembic import op
from mlplane_runtime.migrations import migration_schema

revision = "0003_api_key_notify"
down_revision = "0002_subscriptions"
branch_labels = None
depends_on = None

# The channel is `mlplane_api_keys_<schema>` cut to 63 bytes, as
# mlplane_gateway.auth.key_cache.api_keys_channel names it. The payload is the key's id;
# an empty payload (TRUNCATE) means every key. `last_used_at` alone changing (written
# at most once a minute per key) says nothing a cache holds, so it is not announced.
_FUNCTION = """
CREATE FUNCTION "{schema}".notify_api_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify(left('mlplane_api_keys_' || TG_TABLE_SCHEMA, 63), '');
    ELSIF TG_OP = 'DELETE'
        OR (OLD.id, OLD.key_hash, OLD.team, OLD.scopes, OLD.expires_at, OLD.revoked_at)
           IS DISTINCT FROM
           (NEW.id, NEW.key_hash, NEW.team, NEW.scopes, NEW.expires_at, NEW.revoked_at)
    THEN
        PERFORM pg_notify(left('mlplane_api_keys_' || TG_TABLE_SCHEMA, 63), OLD.id);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    schema = migration_schema()
    op.execute(_FUNCTION.format(schema=schema))
    op.execute(
        f'CREATE TRIGGER api_key_changed AFTER UPDATE OR DELETE ON "{schema}".api_keys'
        f' FOR EACH ROW EXECUTE FUNCTION "{schema}".notify_api_key_changed()'
    )
    op.execute(
        f'CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON "{schema}".api_keys'
        f' FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_api_key_changed()'
    )


def downgrade() -> None:
    schema = migration_schema()
    op.execute(f'DROP TRIGGER IF EXISTS api_keys_truncated ON "{schema}".api_keys')
    op.execute(f'DROP TRIGGER IF EXISTS api_key_changed ON "{schema}".api_keys')
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_api_key_changed()')
