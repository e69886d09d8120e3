"""The builder's tables, defined per schema.

Tests migrate the service into a throwaway schema and run the same code there;
`metadata` (schema `builder`) is what the plug-in uses in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "builder"


@dataclass(frozen=True, slots=True)
class BuilderTables:
    metadata: MetaData
    builds: Table
    messaging: MessagingTables


def define_tables(schema: str) -> BuilderTables:
    """The builder's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    builds = Table(
        "builds",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        # The build's inputs as the registered event gave them (BuildRequest).
        Column("request", JSONB, nullable=False),
        Column("status", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("not_before", DateTime(timezone=True), nullable=True),
        Column("lease_owner", Text, nullable=True),
        Column("lease_expires_at", DateTime(timezone=True), nullable=True),
        Column("base_image", Text, nullable=True),
        Column("image_repository", Text, nullable=True),
        Column("image_digest", Text, nullable=True),
        Column("image_tag", Text, nullable=True),
        Column("layers", JSONB, nullable=False, server_default="[]"),
        Column("bytes_uploaded", BigInteger, nullable=True),
        Column("image_size", BigInteger, nullable=True),
        Column("reused", Boolean, nullable=False, server_default="false"),
        Column("error", Text, nullable=True),
        Column("error_kind", Text, nullable=True),
        Column("retryable", Boolean, nullable=True),
        Column("note", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("started_at", DateTime(timezone=True), nullable=True),
        Column("finished_at", DateTime(timezone=True), nullable=True),
        # W3C trace context of what asked for the build: the worker's span continues it.
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        UniqueConstraint("team", "model", "version", name="uq_builds_team_model_version"),
        Index("ix_builds_team_id", "team", "id"),
        # What workers scan for: the few builds not finished.
        Index(
            "ix_builds_claimable",
            "status",
            "id",
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
    )
    return BuilderTables(metadata, builds, messaging_tables(metadata))


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
