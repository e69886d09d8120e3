"""The gateway's tables, defined per schema (tests migrate into throwaway schemas).

The subscription tables (`subscriptions.tables`) share the schema and the migrations.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from mlplane_gateway.console.tables import define_session_table
from mlplane_gateway.subscriptions.tables import SubscriptionTables, define_subscription_tables

SCHEMA = "gateway"


@dataclass(frozen=True, slots=True)
class GatewayTables:
    metadata: MetaData
    api_keys: Table
    webhook_secrets: Table
    deliveries: Table
    messaging: MessagingTables
    subscriptions: SubscriptionTables


def define_tables(schema: str) -> GatewayTables:
    """The gateway's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    api_keys = Table(
        "api_keys",
        metadata,
        # The 8-character id inside the key: what a presented key is looked up by.
        Column("id", Text, primary_key=True),
        Column("key_hash", LargeBinary, nullable=False),
        Column("team", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("scopes", ARRAY(Text), nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=True),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
        Column("last_used_at", DateTime(timezone=True), nullable=True),
        Index("ix_api_keys_team", "team", "created_at"),
    )
    webhook_secrets = Table(
        "webhook_secrets",
        metadata,
        Column("team", Text, primary_key=True),
        # Not the secret: the secret is derived from it and the gateway's secret key.
        Column("nonce", Text, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    deliveries = Table(
        "deliveries",
        metadata,
        Column("team", Text, nullable=False),
        Column("provider", Text, nullable=False),
        Column("delivery_id", Text, nullable=False),
        Column("event_id", Text, nullable=True),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("team", "provider", "delivery_id", name="pk_deliveries"),
    )
    define_session_table(metadata)
    return GatewayTables(
        metadata,
        api_keys,
        webhook_secrets,
        deliveries,
        messaging_tables(metadata),
        define_subscription_tables(metadata),
    )


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata
