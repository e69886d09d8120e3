"""Alembic for services that each own one PostgreSQL schema.

Every service's migrations live in its own schema, with its own `alembic_version`
table in that schema, so histories never collide in one database. A service's
`migrations/env.py` is two lines::

    from alembic import context
    from mlplane_runtime.migrations import run_migrations
    from mlplane_registry.store import metadata

    run_migrations(context.config.get_main_option("sqlalchemy.url"), metadata, "registry")

The platform applies histories at start with `upgrade_to_head`, which may name a
different schema (tests migrate a service into a throwaway schema): revisions ask
`migration_schema()` where to create their tables instead of hard-coding it.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.operations import Operations
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from mlplane_runtime.db import asyncpg_url, check_schema_name

SCHEMA_ATTRIBUTE = "mlplane_schema"
"""`Config.attributes` key: the schema `upgrade_to_head` migrates (overrides env.py's)."""
CONNECTION_ATTRIBUTE = "connection"
"""`Config.attributes` key of a caller's open connection (Alembic's documented recipe)."""

# Alembic's `context` and `op` are process-wide proxies: two upgrades interleaving
# in one event loop would tear each other's down. One lock per loop serialises them
# (across processes, the advisory lock in `_migrate` does).
_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def run_migrations(connection_url: str | None, metadata: MetaData, schema: str) -> None:
    """Run the current Alembic command for one service's schema; call it from env.py.

    Creates the schema if needed, keeps the version table in it, and limits
    autogenerate to it. The schema is `schema` unless `upgrade_to_head` or the
    command line (`alembic -x schema=...`) names another. Uses the connection
    `upgrade_to_head` passed in when there is one; otherwise connects to
    `connection_url` (postgresql:// or +asyncpg).
    Concurrent runs on one schema (replicas starting together) are serialised by
    an advisory lock. Raises `ValueError` for a bad schema name or a missing URL;
    errors of the migrations themselves propagate and nothing is committed.
    """
    config = context.config
    x_schema = context.get_x_argument(as_dictionary=True).get("schema", schema)
    schema = check_schema_name(config.attributes.get(SCHEMA_ATTRIBUTE, x_schema))
    if context.is_offline_mode():
        context.configure(
            url=connection_url,
            target_metadata=metadata,
            literal_binds=True,
            **_schema_options(schema),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get(CONNECTION_ATTRIBUTE)
    if connection is not None:
        _migrate(connection, metadata, schema)
        return
    if not connection_url:
        raise ValueError("no database URL: set sqlalchemy.url or pass a connection")
    asyncio.run(_migrate_at(asyncpg_url(connection_url), metadata, schema))


async def upgrade_to_head(database_url: str, script_location: str | Path, schema: str) -> None:
    """Apply a service's Alembic history (at `script_location`) to `schema`, up to head.

    Idempotent: at head already, nothing happens. All revisions run in one
    transaction; concurrent calls (several services at platform start) run one
    after the other. Raises what the migrations raise (nothing is committed then),
    `ValueError` for a bad URL or schema name.
    """
    check_schema_name(schema)
    url = asyncpg_url(database_url)
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolates "%": a percent-encoded password must be escaped.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes[SCHEMA_ATTRIBUTE] = schema
    lock = _UPGRADE_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with lock, engine.begin() as conn:
            await conn.run_sync(_upgrade_on, config)
    finally:
        await engine.dispose()


def migration_schema() -> str:
    """Inside a revision: the schema this run migrates (where to create tables)."""
    schema = context.get_context().version_table_schema
    if not isinstance(schema, str):
        raise RuntimeError("not migrating through mlplane_runtime.migrations.run_migrations")
    return schema


def create_messaging_tables_op(op: Operations, schema: str) -> None:
    """Create `outbox`, `outbox_sequence` and `inbox` in `schema`, for a service's first revision.

    The shape written here is version 1 of `messaging_tables`; a later change to
    those tables comes with its own operation for services' later revisions.
    """
    op.create_table(
        "outbox",
        Column("position", BigInteger, Identity(always=False), primary_key=True),
        Column("event_id", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=True),
        Column("sequence", BigInteger, nullable=True),
        Column("headers", JSONB, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("content_type", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        schema=schema,
    )
    op.create_index("ix_outbox_subject_position", "outbox", ["subject", "position"], schema=schema)
    op.create_table(
        "outbox_sequence",
        Column("subject", Text, primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
        schema=schema,
    )
    op.create_table(
        "inbox",
        Column("source", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        PrimaryKeyConstraint("source", "event_id", name="pk_inbox"),
        schema=schema,
    )


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes[CONNECTION_ATTRIBUTE] = connection
    command.upgrade(config, "head")


async def _migrate_at(url: str, metadata: MetaData, schema: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, metadata, schema)
    finally:
        await engine.dispose()


def _migrate(connection: Connection, metadata: MetaData, schema: str) -> None:
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"mlplane_migrations:{schema}"},
    )
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(connection=connection, target_metadata=metadata, **_schema_options(schema))
    with context.begin_transaction():
        context.run_migrations()


def _schema_options(schema: str) -> dict[str, Any]:
    def only_this_schema(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name == schema

    return {
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": only_this_schema,
    }
