"""Alembic environment of the scanner: its own schema, its own version table."""

import os

from alembic import context
from mlplane_runtime.migrations import run_migrations
from mlplane_scanner.store import SCHEMA, metadata

url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("MLPLANE_DATABASE_URL")
run_migrations(url, metadata, SCHEMA)
