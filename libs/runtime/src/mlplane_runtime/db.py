"""A service's database: one async SQLAlchemy engine and its session factory.

Every service keeps its tables in its own PostgreSQL schema (its `MetaData(schema=...)`),
so no query crosses schemas and any service can move to its own database by changing
one URL. Nothing here connects at import time: `create_database` builds the engine
lazily and the first session opens the first connection.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# The URL schemes we accept for PostgreSQL; all are served by the asyncpg driver.
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def asyncpg_url(url: str) -> str:
    """`url` as a `postgresql+asyncpg://` SQLAlchemy URL.

    Accepts `postgresql://`, `postgres://` and `postgresql+asyncpg://`. Raises
    `ValueError` naming the scheme for anything else (mysql, sqlite, a psycopg URL...).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use postgresql:// or postgresql+asyncpg://"
        )
    if not parsed.host and not parsed.query.get("host"):
        raise ValueError("database URL has no host")
    if "sslmode" in parsed.query:
        # libpq spells it sslmode; SQLAlchemy hands query keys to asyncpg.connect(),
        # which takes the same values as `ssl`.
        query = dict(parsed.query)
        query.setdefault("ssl", query.pop("sslmode"))
        query.pop("sslmode", None)
        parsed = parsed.set(query=query)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """`url` as a plain `postgresql://` DSN, for a raw asyncpg connection (LISTEN)."""
    parsed = make_url(asyncpg_url(url))
    if "ssl" in parsed.query:
        query = dict(parsed.query)
        query["sslmode"] = query.pop("ssl")
        parsed = parsed.set(query=query)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def check_schema_name(name: str) -> str:
    """`name` if it is a plain lowercase PostgreSQL identifier; else `ValueError`.

    Schema names are interpolated into DDL and NOTIFY channel names, so only plain
    identifiers are allowed (no quoting games).
    """
    if not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(
            f"invalid schema name {name!r}: lowercase letters, digits and _, at most 63"
        )
    return name


@dataclass(frozen=True, slots=True)
class Database:
    """A service's engine and session factory; `url` is the normalised asyncpg URL."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    application_name: str | None = None
    """Shown in pg_stat_activity for every connection of this Database (and its relay's)."""

    readers: async_sessionmaker[AsyncSession] | None = None
    """Sessions whose statements each autocommit: no BEGIN/ROLLBACK round trips. For
    read-only requests on the hot path; each statement sees its own snapshot, so
    several reads in one request are not consistent with each other."""

    def reader_session(self) -> AsyncSession:
        """A new autocommit session (a transactional one when `readers` is not set)."""
        return (self.readers or self.sessions)()

    def server_settings(self) -> dict[str, str]:
        """Session settings for extra raw asyncpg connections (the relay's LISTEN one)."""
        return {"application_name": self.application_name} if self.application_name else {}

    async def ping(self, timeout_s: float = 5.0) -> bool:
        """True when a `SELECT 1` round trip succeeds within `timeout_s`; never raises."""
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def ensure_schema(self, name: str) -> None:
        """Create schema `name` if it does not exist. Raises `ValueError` on a bad name."""
        check_schema_name(name)
        async with self.engine.begin() as conn:
            # An advisory lock: concurrent CREATE SCHEMA IF NOT EXISTS can still fail
            # with a unique violation when two processes race at start-up.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"mlplane_schema:{name}"},
            )
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))

    async def drop_schema(self, name: str) -> None:
        """Drop schema `name` and everything in it (tests and teardown only).

        Gives up with the database's lock-timeout error after 30 s when a
        transaction still holds locks in the schema, rather than waiting forever.
        """
        check_schema_name(name)
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))

    async def dispose(self) -> None:
        """Close every pooled connection; the Database can be used again afterwards."""
        await self.engine.dispose()


def create_database(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout_s: float = 30.0,
    pre_ping: bool = False,
    application_name: str | None = None,
    echo: bool = False,
) -> Database:
    """A `Database` for `url` (postgresql:// or postgresql+asyncpg://); connects lazily.

    `application_name` (e.g. the service name) labels its connections in PostgreSQL.
    Sessions do not expire objects on commit, so values read in a unit of work stay
    usable after it commits. Raises `ValueError` for a URL that is not PostgreSQL.
    """
    normalised = asyncpg_url(url)
    engine = create_async_engine(
        normalised,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        # Off by default: a ping costs a round trip per checkout on the consumers' hot
        # path. Without it a database restart fails the first use of each stale
        # connection, SQLAlchemy then invalidates the pool, and the caller retries.
        pool_pre_ping=pre_ping,
        echo=echo,
        connect_args=(
            {"server_settings": {"application_name": application_name}} if application_name else {}
        ),
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    readers = async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
    return Database(
        url=normalised,
        engine=engine,
        sessions=sessions,
        readers=readers,
        application_name=application_name,
    )
