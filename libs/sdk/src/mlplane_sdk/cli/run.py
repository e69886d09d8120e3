"""`mlplane up` (every installed service in one process) and `mlplane serve <service>`.

The platform's modules are imported when one of these commands runs, not when the
CLI loads: they take seconds to import, which `mlplane --version` and
`mlplane dead-letters` should not pay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlplane_sdk.cli.failure import EXIT_INTERRUPTED, fail

if TYPE_CHECKING:
    from mlplane_runtime.platform.balance import ConnectionBalancer
    from mlplane_runtime.service import ServicePlugin
    from mlplane_runtime.settings import RuntimeSettings


def up(
    processes: Annotated[
        bool,
        typer.Option(
            "--processes",
            help="Run each service as its own process (the deployed shape); needs RabbitMQ.",
        ),
    ] = False,
) -> None:
    """Run every installed service in one process and serve HTTP (127.0.0.1:8080).

    With no MLPLANE_DATABASE_URL it starts an embedded PostgreSQL under
    MLPLANE_DATA_DIR; with no MLPLANE_AMQP_URL the bus is in-process. Stops
    cleanly on Ctrl+C or SIGTERM. With --processes, each service runs as its own
    `mlplane serve` process (gateway on MLPLANE_HTTP_PORT, the others on the ports
    after it), its log lines prefixed with its name.
    """
    from mlplane_runtime.service import PluginDiscoveryError, discover_services

    settings = _settings()
    if processes:
        # The names are enough here: each child imports its own service (and says so if
        # it cannot); importing all of them in the launcher cost it seconds and ~250 MB.
        _up_processes(settings, installed_service_names())
        return
    try:
        plugins = discover_services()
    except PluginDiscoveryError as exc:
        fail(str(exc))
    _configure_telemetry("mlplane", settings)
    _serve("mlplane", settings, plugins)


def installed_service_names() -> list[str]:
    """The installed services' names, from their entry points (each bears its service's
    name), without importing them."""
    from importlib.metadata import entry_points

    from mlplane_runtime.service import ENTRY_POINT_GROUP

    return sorted({entry_point.name for entry_point in entry_points(group=ENTRY_POINT_GROUP)})


def serve(
    service: Annotated[str, typer.Argument(help="The installed service to run, e.g. registry.")],
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes sharing the port, each a replica of the service.",
        ),
    ] = 1,
) -> None:
    """Run one installed service alone (as its production container does).

    Without MLPLANE_HTTP_PORT it listens on the service's own port (gateway 8080,
    registry 8081, builder 8082, scanner 8083, deployer 8084, drift 8085). With
    --workers N, N processes serve the port (see mlplane_runtime.platform.workers);
    without MLPLANE_DATABASE_URL they share one embedded PostgreSQL the parent starts.
    """
    from mlplane_runtime.platform.ports import default_port
    from mlplane_runtime.service import PluginDiscoveryError, find_service

    # Set before any settings are read: whatever derives an address from it agrees.
    os.environ.setdefault("MLPLANE_HTTP_PORT", str(default_port(service)))
    settings = _settings()
    try:
        plugin = find_service(service)
    except PluginDiscoveryError as exc:
        fail(str(exc))
    if workers > 1:
        _serve_workers(service, settings, plugin, workers)
        return
    _configure_telemetry(service, settings)
    _serve(service, settings, [plugin])


def _serve_workers(
    service: str, settings: RuntimeSettings, plugin: ServicePlugin, workers: int
) -> None:
    """`serve` with `workers` forked processes; the parent only binds and supervises."""
    from mlplane_runtime.embedded_postgres import EmbeddedPostgres
    from mlplane_runtime.errors import MlplaneError
    from mlplane_runtime.identity_secret import platform_identity_secret
    from mlplane_runtime.platform import bind_http_socket, run_workers, serve_platform

    _configure_logging(service, settings)
    try:
        # Made once here, so the workers do not race to create the dev secret.
        platform_identity_secret(settings)
        sock = bind_http_socket(settings.http_host, settings.http_port)
    except MlplaneError as exc:
        fail(exc.detail)
    postgres = None
    if settings.database_url is None:
        postgres = EmbeddedPostgres(settings.data_dir)
        settings = settings.model_copy(update={"database_url": postgres.start()})

    # Imported before the fork, so the workers share these pages rather than each
    # importing its own copy (the tracer provider itself is made in each worker).
    import mlplane_runtime.telemetry.setup  # noqa: F401
    import opentelemetry.sdk.trace  # noqa: F401
    import uvloop  # noqa: F401

    def serve_one(
        listen: socket.socket, index: int, ready: Callable[[], None], balancer: ConnectionBalancer
    ) -> int:
        # In the forked child: tracing may start an exporter thread, so only here.
        _configure_tracing(service, settings)

        def on_ready(url: str) -> None:
            ready()
            if index == 0:
                _announce(url)

        try:
            _run(
                serve_platform(
                    settings,
                    [plugin],
                    name=service,
                    on_ready=on_ready,
                    listen=listen,
                    balancer=balancer,
                )
            )
        except typer.Exit as exc:
            return exc.exit_code
        return 0

    try:
        code = run_workers(sock, workers, serve_one)
    finally:
        if postgres is not None:
            postgres.stop()
    if code:
        raise typer.Exit(code)


def _up_processes(settings: RuntimeSettings, services: list[str]) -> None:
    from mlplane_runtime.embedded_postgres import EmbeddedPostgres
    from mlplane_runtime.errors import MlplaneError
    from mlplane_runtime.identity_secret import platform_identity_secret

    from mlplane_sdk.cli.processes import ProcessLauncher, child_environment, plan_children

    if settings.amqp_url is None:
        fail(
            "mlplane up --processes needs RabbitMQ: set MLPLANE_AMQP_URL "
            "(the in-process bus cannot span processes)"
        )
    _configure_telemetry("launcher", settings)
    try:
        # Made once here, so the children do not race to create the dev secret.
        platform_identity_secret(settings)
    except MlplaneError as exc:
        fail(exc.detail)

    async def launch() -> None:
        postgres = None
        database_url = settings.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir)
            database_url = await asyncio.to_thread(postgres.start)
        try:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            environment = child_environment()
            if sys.stdout.isatty():
                # Their lines reach a person through this terminal, not a log shipper.
                environment.setdefault("MLPLANE_LOG_FORMAT", "text")
            plans = plan_children(
                services,
                environment=environment,
                host=settings.http_host,
                gateway_port=settings.http_port,
                database_url=database_url,
            )
            await ProcessLauncher(plans, settings.http_host).run(stop)
        finally:
            if postgres is not None:
                await asyncio.to_thread(postgres.stop)

    _run(launch())


def _settings() -> RuntimeSettings:
    from mlplane_runtime.settings import RuntimeSettings
    from pydantic import ValidationError

    try:
        return RuntimeSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MLPLANE_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        fail(f"invalid settings: {problems}")


def _configure_telemetry(service: str, settings: RuntimeSettings) -> None:
    _configure_logging(service, settings)
    _configure_tracing(service, settings)


def _configure_logging(service: str, settings: RuntimeSettings) -> None:
    from mlplane_runtime.telemetry.logging import configure_logging

    configure_logging(service, settings.log_level, format=settings.log_format)
    # pgserver narrates every command it runs at INFO; its warnings are enough.
    logging.getLogger("pgserver").setLevel(logging.WARNING)


def _configure_tracing(service: str, settings: RuntimeSettings) -> None:
    from mlplane_runtime.telemetry.setup import configure_tracing

    configure_tracing(service, settings.otlp_endpoint)


def _serve(name: str, settings: RuntimeSettings, plugins: list[ServicePlugin]) -> None:
    from mlplane_runtime.platform import serve_platform

    _run(serve_platform(settings, plugins, name=name, on_ready=_announce))


def _announce(url: str) -> None:
    typer.echo(f"mlplane is serving on {url} (Ctrl+C to stop)")


def _run(main: Coroutine[Any, Any, None]) -> None:
    import uvloop
    from mlplane_runtime.errors import MlplaneError

    from mlplane_sdk.cli.processes import LaunchFailed

    try:
        # uvloop: the same asyncio API, its loop and transports in C (cheaper requests).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    except MlplaneError as exc:
        fail(exc.detail)
    except LaunchFailed as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
