"""A service built by its own `build(context)` for tests, without a platform.

Tests build the same composition root the host does: `service_context(...)` makes
the `ServiceContext` a host would give (its unit-of-work factory on the test
database and schema, the test identity key, a data directory), and
`service_app(context, parts)` serves the parts' routers bound to that context,
as the host mounts them (errors, body limits and HEAD included)::

    context = service_context("registry", database, tables.messaging, data_dir=tmp_path)
    app = service_app(context, build(context, tables=tables, settings=settings))

Nothing is started: no consumer, relay, lifespan or worker (tests that need them
host the plug-in in a `Platform`). The context's transport refuses to be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from mlplane_runtime.app import create_service_app
from mlplane_runtime.bus.base import DeadLetter, DeliveryHandler, OutboundMessage
from mlplane_runtime.caller import caller_dependencies
from mlplane_runtime.db import Database
from mlplane_runtime.deps import bind_service
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.messaging_tables import MessagingTables
from mlplane_runtime.service import ServiceContext, ServiceParts
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_testing.identity import TEST_IDENTITY_SECRET


class OfflineTransport:
    """A transport for a service tested without a bus: any use is a test's bug."""

    async def start(self) -> None:
        raise RuntimeError("this test context has no bus")

    async def stop(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        raise RuntimeError("this test context has no bus")

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        raise RuntimeError("this test context has no bus")

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        raise RuntimeError("this test context has no bus")

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        raise RuntimeError("this test context has no bus")

    async def ping(self) -> bool:
        return False


def service_context(
    name: str,
    database: Database,
    messaging: MessagingTables,
    *,
    data_dir: Path,
    settings: RuntimeSettings | None = None,
    identity_secret: bytes = TEST_IDENTITY_SECRET.encode(),
) -> ServiceContext:
    """The context a host would give service `name` whose tables are in `messaging`'s
    schema; its routes verify identities signed with the test secret
    (`testing.identity.GatewayIdentity`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServiceContext(
        name=name,
        settings=settings or RuntimeSettings(database_url=database.url, amqp_url=None),
        database=database,
        uow_factory=UnitOfWorkFactory(database, messaging, name),
        transport=OfflineTransport(),
        data_dir=data_dir,
        caller=caller_dependencies(name, derive_identity_key(identity_secret, name)),
        identity_secret=identity_secret,
    )


def service_app(context: ServiceContext, parts: ServiceParts) -> FastAPI:
    """An app serving `parts.routers` bound to `context` at the root, as the host binds them."""
    return create_service_app(context.name, routers=[bind_service(parts.routers, context, parts)])
