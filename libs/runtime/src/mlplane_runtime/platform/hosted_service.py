"""One service plug-in wired into a host: its schema, consumer, relay, routes, lifespan
and workers."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import APIRouter
from mlplane_contracts.topology import source_of

from mlplane_runtime.bus.base import Transport
from mlplane_runtime.caller import CallerDependency, caller_dependencies
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.dead_letters_api import dead_letters_router
from mlplane_runtime.deps import service_binder
from mlplane_runtime.hot_path import MountedHotRoute
from mlplane_runtime.identity_secret import service_identity_key
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_runtime.relay import OutboxRelay
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory

_log = logging.getLogger("mlplane.platform")


class HostedService:
    """A plug-in and what the host built for it; `subscribe`, then `start` and `stop`.

    The plug-in is built once, here: its `ServiceParts` give the consumer's handlers,
    the routes (bound to this hosting, see `deps.service_binder`), the lifespan
    entered by `start` and the workers started after it.
    """

    def __init__(
        self,
        plugin: ServicePlugin,
        settings: RuntimeSettings,
        database: Database,
        transport: Transport,
        data_dir: Path,
        identity_secret: bytes | None = None,
        hosted: frozenset[str] = frozenset(),
    ) -> None:
        """`identity_secret` is the platform's (see `identity_secret`); `hosted` names every
        service the host serves beside this one (`ServiceContext.hosted`). Raises
        IdentityNotConfigured when a service the gateway fronts has no identity key, and
        what the plug-in's `build` raises (InvalidInput for its settings)."""
        self.plugin = plugin
        self.name = plugin.name
        tables = plugin.messaging()
        caller = None
        if plugin.verifies_gateway_identity:
            key = service_identity_key(plugin.name, identity_secret, settings.env)
            caller = caller_dependencies(plugin.name, key)
        self.context = ServiceContext(
            name=plugin.name,
            settings=settings,
            database=database,
            uow_factory=UnitOfWorkFactory(database, tables, plugin.name),
            transport=transport,
            data_dir=data_dir,
            caller=caller,
            identity_secret=identity_secret,
            hosted=hosted | {plugin.name},
        )
        self.parts: ServiceParts = plugin.parts_for(self.context)
        self.consumer = EventConsumer(plugin.name, self.context.uow_factory, self.parts.handlers)
        self.relay = OutboxRelay(
            database, tables, transport, plugin.name, batch_size=settings.relay_batch_size
        )
        self._lifespan: AbstractAsyncContextManager[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._relay_started = False

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types this service consumes (the bindings of its queue)."""
        return tuple(sorted(self.consumer.event_types))

    async def prepare_schema(self) -> None:
        """Bring the service's schema to its latest shape: its migrations, or create_all.

        Raises what the migrations raise; nothing of a failed migration is committed.
        """
        plugin = self.plugin
        database = self.context.database
        await database.ensure_schema(plugin.schema)
        if plugin.migrations is not None:
            await upgrade_to_head(database.url, plugin.migrations, plugin.schema)
            return
        async with database.engine.begin() as connection:
            await connection.run_sync(plugin.metadata.create_all)

    def subscribe(self) -> None:
        """Register the consumer on the transport (before the transport starts)."""
        if self.event_types:
            self.context.transport.subscribe(self.name, self.event_types, self.consumer)

    def router(self) -> APIRouter:
        """The service's routes under its prefix, its dead-letter API under `/<service name>`."""
        # Each router included once, with its prefix and binding: every level of nested
        # routers is another copy of every route (5 MB a process for the registry's).
        router = APIRouter()
        binder = service_binder(self.context, self.parts)
        for own in self.parts.routers:
            router.include_router(own, prefix=self.plugin.prefix, dependencies=[binder])
        router.include_router(
            dead_letters_router(self.name, self.context.transport, self._caller()),
            prefix=f"/{self.name}",
        )
        return router

    def hot_routes(self) -> list[MountedHotRoute]:
        """The service's hot routes, under the prefix its routes are mounted at."""
        return [
            MountedHotRoute(self.name, self.plugin.prefix, route) for route in self.parts.hot_routes
        ]

    def _caller(self) -> CallerDependency:
        if self.parts.caller is not None:
            return self.parts.caller
        return self.context.require_caller().caller

    async def start(self) -> None:
        """Start the outbox relay, enter the service's own lifespan, start its workers.

        Raises what entering the lifespan raises; the platform then stops what started.
        """
        self.relay.start()
        self._relay_started = True
        lifespan = self.parts.lifespan
        if lifespan is not None:
            await lifespan.__aenter__()
            self._lifespan = lifespan
        for worker in self.parts.workers:
            self._workers.append(self._start_worker(worker))
        _log.info(
            "hosting service %s: schema %s, consumes %s",
            self.name,
            self.plugin.schema,
            ", ".join(self.event_types) or "nothing",
            extra={
                "hosted_service": self.name,
                "schema": self.plugin.schema,
                "event_source": source_of(self.name),
                "consumes": list(self.event_types),
            },
        )

    def _start_worker(self, worker: ServiceWorker) -> asyncio.Task[None]:
        task = asyncio.create_task(worker.run(), name=f"{self.name}:{worker.name}")

        def ended(done: asyncio.Task[None]) -> None:
            if done.cancelled():
                return
            failure = done.exception()
            _log.error(
                "service %s: worker %s %s",
                self.name,
                worker.name,
                "stopped by itself" if failure is None else "failed",
                exc_info=failure,
                extra={"hosted_service": self.name, "worker": worker.name},
            )

        task.add_done_callback(ended)
        return task

    async def stop_lifespan(self) -> None:
        """Stop the service's workers, then exit its own lifespan; errors are logged,
        never raised."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is None:
            return
        try:
            await lifespan.__aexit__(None, None, None)
        except Exception as exc:
            _log.error("service %s: lifespan did not exit cleanly", self.name, exc_info=exc)

    async def stop_relay(self) -> None:
        """Stop the outbox relay (unpublished rows stay for the next start); never raises."""
        if not self._relay_started:
            return
        self._relay_started = False
        try:
            await self.relay.stop()
        except Exception as exc:
            _log.error("service %s: relay did not stop cleanly", self.name, exc_info=exc)
