"""`mlplane up` (every installed service in one process) and `mlplane serve <service>`.

The platform's modules are imported when one of these commands runs, not when the
CLI loads: they take seconds to import, which `mlplane --version` and
`mlplane dead-letters` should not pay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlplane_sdk.cli.failure import fail

if TYPE_CHECKING:
    from mlplane_runtime.service import ServicePlugin
    from mlplane_runtime.settings import RuntimeSettings

EXIT_INTERRUPTED = 130


def up() -> None:
    """Run every installed service in one process and serve HTTP (127.0.0.1:8080).

    With no MLPLANE_DATABASE_URL it starts an embedded PostgreSQL under
    MLPLANE_DATA_DIR; with no MLPLANE_AMQP_URL the bus is in-process. Stops
    cleanly on Ctrl+C or SIGTERM.
    """
    from mlplane_runtime.service import PluginDiscoveryError, discover_services

    settings = _settings()
    _configure_telemetry("mlplane", settings)
    try:
        plugins = discover_services()
    except PluginDiscoveryError as exc:
        fail(str(exc))
    _serve("mlplane", settings, plugins)


def serve(
    service: Annotated[str, typer.Argument(help="The installed service to run, e.g. registry.")],
) -> None:
    """Run one installed service alone (as its production container does)."""
    from mlplane_runtime.service import PluginDiscoveryError, find_service

    settings = _settings()
    try:
        plugin = find_service(service)
    except PluginDiscoveryError as exc:
        fail(str(exc))
    _configure_telemetry(service, settings)
    _serve(service, settings, [plugin])


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
    from mlplane_runtime.telemetry.logging import configure_logging
    from mlplane_runtime.telemetry.setup import configure_tracing

    configure_logging(service, settings.log_level)
    # pgserver narrates every command it runs at INFO; its warnings are enough.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    configure_tracing(service, settings.otlp_endpoint)


def _serve(name: str, settings: RuntimeSettings, plugins: list[ServicePlugin]) -> None:
    from mlplane_runtime.platform import serve_platform

    _run(serve_platform(settings, plugins, name=name, on_ready=_announce))


def _announce(url: str) -> None:
    typer.echo(f"mlplane is serving on {url} (Ctrl+C to stop)")


def _run(main: Coroutine[Any, Any, None]) -> None:
    import uvloop
    from mlplane_runtime.errors import MlplaneError

    try:
        # uvloop: the same asyncio API, its loop and transports in C (cheaper requests).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    except MlplaneError as exc:
        fail(exc.detail)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
