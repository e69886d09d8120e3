"""Shared fixtures of the registry's tests: the real PostgreSQL, a throwaway schema per test.

Other engineers run tests on the same PostgreSQL at the same time: each test
migrates the registry into its own schema `t_<hex>` and drops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent
from mlplane_registry import api, handlers
from mlplane_registry.main import MIGRATIONS
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables, define_tables
from mlplane_runtime.app import create_service_app
from mlplane_runtime.bus.base import InboundMessage
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_runtime.uow import UnitOfWorkFactory

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

Deliver = Callable[[CloudEvent], Awaitable[None]]


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test PostgreSQL URL (env MLPLANE_TEST_DATABASE_URL)."""
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
async def registry_database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url, pool_size=5, max_overflow=20)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def tables(registry_database: Database, database_url: str) -> AsyncIterator[RegistryTables]:
    """The registry migrated into a fresh schema, dropped (cascade) after the test."""
    schema = f"t_{uuid4().hex[:10]}"
    await registry_database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        yield define_tables(schema)
    finally:
        await registry_database.drop_schema(schema)


@pytest.fixture
def uow_factory(registry_database: Database, tables: RegistryTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(registry_database, tables.messaging, "registry")


@pytest.fixture
async def client(
    tables: RegistryTables, uow_factory: UnitOfWorkFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the registry's API (problem+json errors included), team-less."""
    app = create_service_app(
        "registry",
        routers=api.routers(
            tables, uow_factory, RegistrySettings(default_page_size=10, max_page_size=50)
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as http:
        yield http


@pytest.fixture
def consumer(tables: RegistryTables, uow_factory: UnitOfWorkFactory) -> EventConsumer:
    """The registry's idempotent consumer (inbox, poison sorting) over its handlers."""
    return EventConsumer("registry", uow_factory, handlers.event_handlers(tables))


@pytest.fixture
def deliver(consumer: EventConsumer) -> Deliver:
    """Deliver one event to the registry as the bus would (encoded, then decoded)."""

    async def send(event: CloudEvent) -> None:
        message = encode(event)
        await consumer(
            InboundMessage(
                body=message.body,
                headers=message.headers,
                content_type=message.content_type,
                message_id=event.id,
                routing_key=event.type,
            )
        )

    return send


@pytest.fixture
def team() -> str:
    """A team name no other test uses."""
    return f"team-{uuid4().hex[:8]}"
