"""Alembic environment of the drift: its own schema, its own version table."""

import os

from alembic import context
from mlplane_drift.store import SCHEMA, metadata
from mlplane_runtime.migrations import run_migrations

url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("MLPLANE_DATABASE_URL")
run_migrations(url, metadata, SCHEMA)
