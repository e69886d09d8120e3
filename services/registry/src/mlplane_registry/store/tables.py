"""The registry's tables, defined per schema.

Tests migrate the service into a throwaway schema and run the same code there;
`metadata` (schema `registry`) is what the plug-in uses in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "registry"


@dataclass(frozen=True, slots=True)
class RegistryTables:
    metadata: MetaData
    models: Table
    versions: Table
    aliases: Table
    messaging: MessagingTables
    verified_artifacts: Table
    registrations: Table


def define_tables(schema: str) -> RegistryTables:
    """The registry's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    models = Table(
        "models",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("description", Text, nullable=False, server_default=""),
        Column("tags", JSONB, nullable=False, server_default="{}"),
        # Version numbers are handed out from here: monotonic, never reused.
        Column("last_version", Integer, nullable=False, server_default="0"),
        Column("etag", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("team", "name", name="uq_models_team_name"),
    )
    versions = Table(
        "model_versions",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "model_id",
            BigInteger,
            ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("framework", Text, nullable=False),
        Column("artifact", JSONB, nullable=False),
        Column("lineage", JSONB, nullable=False),
        Column("signature", JSONB, nullable=True),
        Column("tags", JSONB, nullable=False, server_default="{}"),
        Column("status_message", Text, nullable=True),
        # ready | pending | failed: whether the registry verified the artifact (MLflow's
        # READY, PENDING_REGISTRATION, FAILED_REGISTRATION).
        Column("registration", Text, nullable=False, server_default="ready"),
        Column("stage", Text, nullable=False),
        Column("lifecycle", JSONB, nullable=False, server_default="{}"),
        Column("ci_run_id", Text, nullable=True),
        Column("registered_by", Text, nullable=False),
        Column("etag", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        UniqueConstraint("model_id", "ci_run_id", name="uq_model_versions_ci_run"),
        Index("ix_model_versions_team_created", "team", "created_at", "id"),
        # A version by its name (get-version) and a model's versions in order (search).
        Index("ix_model_versions_team_model_version", "team", "model", "version", unique=True),
        Index("ix_model_versions_team_model_created", "team", "model", "created_at", "id"),
        Index("ix_model_versions_tags", "tags", postgresql_using="gin"),
    )
    aliases = Table(
        "aliases",
        metadata,
        Column(
            "model_id",
            BigInteger,
            ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("alias", Text, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("etag", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    # Uploads the registry completed and checked: what a version may point at in its
    # own store (domain.artifacts). Kept after the version is deleted: the object is.
    verified_artifacts = Table(
        "verified_artifacts",
        metadata,
        Column("uri", Text, primary_key=True),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("size_bytes", BigInteger, nullable=False),
        Column("sha256", Text, nullable=False),
        Column("verified_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    # Versions waiting for the registration worker to read and verify their artifact.
    registrations = Table(
        "registrations",
        metadata,
        Column(
            "version_id",
            BigInteger,
            ForeignKey(f"{schema}.model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("source", Text, nullable=False),
        Column("inputs", JSONB, nullable=False, server_default="{}"),
        Column("state", Text, nullable=False, server_default="pending"),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("due_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("traceparent", Text, nullable=True),
        Column("tracestate", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_registrations_due", "state", "due_at"),
    )
    return RegistryTables(
        metadata,
        models,
        versions,
        aliases,
        messaging_tables(metadata),
        verified_artifacts,
        registrations,
    )


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
