"""The composition root that hosts N service plug-ins in one process.

`Platform.start()` builds, in order: the database (the configured URL, or an
embedded PostgreSQL under the data directory), the transport (RabbitMQ when an
AMQP URL is configured, else the in-process transport on the same database),
each service's schema, consumer and outbox relay, and one FastAPI app with every
service's routes under `/<service>`. `stop()` takes it down in reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mlplane_runtime.app import create_service_app
from mlplane_runtime.bus.base import Transport
from mlplane_runtime.bus.embedded import EmbeddedTransport
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.embedded_postgres import EmbeddedPostgres
from mlplane_runtime.errors import InvalidInput, Unavailable
from mlplane_runtime.identity_secret import platform_identity_secret
from mlplane_runtime.platform.hosted_service import HostedService
from mlplane_runtime.service import ServicePlugin
from mlplane_runtime.settings import RuntimeSettings

_log = logging.getLogger("mlplane.platform")

CONNECT_TIMEOUT_S = 30.0
EMBEDDED_BUS_SCHEMA = "bus"
"""Where the in-process bus keeps its queues when no AMQP URL is configured."""


class PlatformStartFailed(Unavailable):
    """A dependency (database, broker) did not answer, or a service could not be set up."""

    title = "Platform start failed"


class Platform:
    """Hosts `plugins` on the infrastructure `settings` names; serve `app` once started.

    `name` titles the HTTP app (the platform, or the one service `mlplane serve`
    runs). `bus_schema` is where the in-process bus keeps its tables when no AMQP
    URL is set (tests sharing a database give each platform its own).
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        plugins: Sequence[ServicePlugin],
        *,
        name: str = "mlplane",
        bus_schema: str = EMBEDDED_BUS_SCHEMA,
    ) -> None:
        names = [plugin.name for plugin in plugins]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"services hosted twice: {', '.join(duplicates)}")
        self.settings = settings
        self.plugins = tuple(plugins)
        self.name = name
        self.bus_schema = bus_schema
        self._embedded_postgres: EmbeddedPostgres | None = None
        self._database: Database | None = None
        self._transport: Transport | None = None
        self._transport_started = False
        self._services: list[HostedService] = []
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        """The HTTP app: `/healthz`, `/readyz`, `/metrics`, `/<service>/...`.

        Raises RuntimeError before `start()`.
        """
        if self._app is None:
            raise RuntimeError("the platform is not started")
        return self._app

    @property
    def database(self) -> Database:
        """The database every hosted service's schema lives in. RuntimeError before start."""
        if self._database is None:
            raise RuntimeError("the platform is not started")
        return self._database

    @property
    def transport(self) -> Transport:
        """The bus every hosted service consumes from. RuntimeError before start."""
        if self._transport is None:
            raise RuntimeError("the platform is not started")
        return self._transport

    @property
    def services(self) -> tuple[HostedService, ...]:
        """The hosted services, in start order."""
        return tuple(self._services)

    async def start(self) -> None:
        """Connect, migrate every service, start consumers and relays, build the app.

        On any failure, whatever was started is stopped again before raising.
        Raises PlatformStartFailed (database or broker unreachable, a service's
        schema cannot be prepared) or EmbeddedPostgresFailed.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        identity_secret = _identity_secret(settings)
        database_url = settings.database_url
        if database_url is None:
            self._embedded_postgres = EmbeddedPostgres(settings.data_dir)
            database_url = await asyncio.to_thread(self._embedded_postgres.start)
        self._database = database = create_database(
            database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        await _check_database(database)

        retry = settings.retry_policy()
        if settings.amqp_url is not None:
            # Imported only when used: FastStream and aio-pika are 7 MB a process.
            from mlplane_runtime.bus.rabbit import RabbitTransport

            self._transport = RabbitTransport(
                settings.amqp_url, retry=retry, connection_name=f"mlplane {self.name}"
            )
        else:
            self._transport = EmbeddedTransport(
                database.engine, retry=retry, schema=self.bus_schema
            )
        transport = self._transport

        hosted = frozenset(plugin.name for plugin in self.plugins)
        for plugin in self.plugins:
            data_dir = settings.data_dir / plugin.name
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                service = HostedService(
                    plugin, settings, database, transport, data_dir, identity_secret, hosted
                )
            except InvalidInput as exc:
                raise PlatformStartFailed(exc.detail) from exc
            try:
                await service.prepare_schema()
            except Exception as exc:
                raise PlatformStartFailed(
                    f"the schema {plugin.schema!r} of service {plugin.name} could not be "
                    f"prepared: {type(exc).__name__}: {exc}"
                ) from exc
            service.subscribe()
            self._services.append(service)

        await _start_transport(transport, settings)
        self._transport_started = True
        for service in self._services:
            await service.start()

        self._app = create_service_app(
            self.name,
            routers=[service.router() for service in self._services],
            readiness={"database": database.ping, "bus": transport.ping},
            hot_routes=[route for service in self._services for route in service.hot_routes()],
        )
        _log.info(
            "platform started: %d service(s), %s database, %s bus",
            len(self._services),
            "embedded" if self._embedded_postgres is not None else "external",
            "RabbitMQ" if settings.amqp_url is not None else "in-process",
        )

    async def stop(self) -> None:
        """Stop services' lifespans, relays, the transport (consumers finish their
        in-flight events, then it disconnects), the database, the embedded PostgreSQL.

        Idempotent; never raises: each failure is logged and the rest still stops.
        Outbox rows not yet published stay in the database for the next start.
        """
        for service in reversed(self._services):
            await service.stop_lifespan()
        for service in reversed(self._services):
            await service.stop_relay()
        self._services.clear()
        self._app = None
        transport, self._transport = self._transport, None
        if transport is not None and self._transport_started:
            self._transport_started = False
            try:
                await transport.stop()
            except Exception as exc:
                _log.error("the transport did not stop cleanly", exc_info=exc)
        database, self._database = self._database, None
        if database is not None:
            try:
                await database.dispose()
            except Exception as exc:
                _log.error("the database pool did not close cleanly", exc_info=exc)
        embedded, self._embedded_postgres = self._embedded_postgres, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _identity_secret(settings: RuntimeSettings) -> bytes | None:
    try:
        return platform_identity_secret(settings)
    except InvalidInput as exc:
        raise PlatformStartFailed(exc.detail) from exc


async def _check_database(database: Database) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:
        where = make_url(database.url).render_as_string(hide_password=True)
        raise PlatformStartFailed(
            f"cannot reach the database at {where}: {_reason(exc)}; "
            "check MLPLANE_DATABASE_URL (unset it to use the embedded PostgreSQL)"
        ) from exc


async def _start_transport(transport: Transport, settings: RuntimeSettings) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await transport.start()
    except Exception as exc:
        if settings.amqp_url is None:
            raise PlatformStartFailed(f"the in-process bus did not start: {_reason(exc)}") from exc
        where = make_url(settings.amqp_url).render_as_string(hide_password=True)
        raise PlatformStartFailed(
            f"cannot reach the message broker at {where}: {_reason(exc)}; "
            "check MLPLANE_AMQP_URL (unset it to use the in-process bus)"
        ) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0]}" if text_ else type(exc).__name__
