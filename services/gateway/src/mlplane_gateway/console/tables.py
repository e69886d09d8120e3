"""The console's sessions table, in the gateway's schema (migration 0007)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, LargeBinary, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import ARRAY

SESSIONS = "console_sessions"


def define_session_table(metadata: MetaData) -> Table:
    """Sessions of people signed in to the console.

    Only the SHA-256 of a session id is stored: a read of the table (a backup, a
    replica) gives no usable session. The key's id is kept so a revoked or expired
    key ends its sessions on their next request.
    """
    return Table(
        SESSIONS,
        metadata,
        Column("id_hash", LargeBinary, primary_key=True),
        Column("csrf_token", Text, nullable=False),
        Column("principal", Text, nullable=False),
        Column("kind", Text, nullable=False),
        Column("key_id", Text, nullable=True),
        Column("team", Text, nullable=False),
        Column("scopes", ARRAY(Text), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index("ix_console_sessions_expires_at", "expires_at"),
    )


def session_table(metadata: MetaData) -> Table:
    """The sessions table defined in `metadata` (by `tables.define_tables`)."""
    return metadata.tables[f"{metadata.schema}.{SESSIONS}" if metadata.schema else SESSIONS]
