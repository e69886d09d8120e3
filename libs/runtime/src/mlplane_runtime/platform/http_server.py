"""Serving a started platform over HTTP until SIGINT or SIGTERM, then stopping it in order.

The listening socket is bound before anything else starts, so a taken port is a
clear error at once rather than after the database and bus came up. uvicorn's own
signal handling re-raises the signal once it is done serving, which would kill the
process before the platform stops; here the host handles the signals itself.
Connections are served under `http_protocol.ConnectionLimits` built from the
`MLPLANE_HTTP_*` settings: header, body and keep-alive deadlines, a connection cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.platform.balance import ConnectionBalancer
from mlplane_runtime.platform.host import EMBEDDED_BUS_SCHEMA, Platform
from mlplane_runtime.platform.http_protocol import (
    ConnectionLimits,
    LimitedHttpToolsProtocol,
    limited_protocol,
)
from mlplane_runtime.service import ServicePlugin
from mlplane_runtime.settings import RuntimeSettings

_log = logging.getLogger("mlplane.platform")

GRACEFUL_SHUTDOWN_S = 10


class PortUnavailable(MlplaneError):
    """The HTTP address cannot be bound (taken by another process, or not local)."""

    status = 503
    title = "Port unavailable"
    retryable = False


def bind_http_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (port 0: any free port), not yet listening.

    Raises PortUnavailable naming the address and what to change.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot resolve the HTTP host {host!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} on {host} is already in use by another process; stop it, "
                "or set MLPLANE_HTTP_PORT to a free port"
            ) from exc
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def connection_limits(settings: RuntimeSettings) -> ConnectionLimits:
    """The limits every connection to the platform is served under."""
    return ConnectionLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_connections=settings.http_max_connections,
        max_header_bytes=settings.http_max_header_bytes,
    )


class _PlatformServer(uvicorn.Server):
    """uvicorn without its signal capture: the caller owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_platform(
    settings: RuntimeSettings,
    plugins: Sequence[ServicePlugin],
    *,
    name: str = "mlplane",
    on_ready: Callable[[str], None] | None = None,
    listen: socket.socket | None = None,
    until: asyncio.Event | None = None,
    bus_schema: str = EMBEDDED_BUS_SCHEMA,
    balancer: ConnectionBalancer | None = None,
) -> None:
    """Host `plugins`, serve HTTP on `settings.http_host:http_port` until SIGINT/SIGTERM
    (or until `until` is set, when given).

    Then stops accepting requests, lets running ones finish (bounded), and stops
    the platform: services' relays, the transport, the database, the embedded
    PostgreSQL. A signal during start-up stops what was started and returns.
    `listen` is an already bound socket to serve on instead (it is closed after);
    `on_ready` gets the base URL once requests are served. `balancer`: this process
    is one of several workers on `listen`, sharing connections evenly. Raises
    PortUnavailable, PlatformStartFailed or EmbeddedPostgresFailed when it cannot
    start (having stopped whatever it started).
    """
    sock = (
        listen if listen is not None else bind_http_socket(settings.http_host, settings.http_port)
    )
    shutdown = _Shutdown(asyncio.current_task())
    watcher = asyncio.create_task(_watch(until, shutdown)) if until is not None else None
    try:
        with _signal_handlers(asyncio.get_running_loop(), shutdown.on_signal):
            platform = Platform(settings, plugins, name=name, bus_schema=bus_schema)
            await platform.start()
            _freeze_startup_objects()
            try:
                await _serve(platform, settings, sock, shutdown, on_ready, balancer)
            finally:
                _log.info("stopping the platform")
                await platform.stop()
                _log.info("platform stopped")
    except asyncio.CancelledError:
        if not shutdown.requested:
            raise
    finally:
        if watcher is not None:
            watcher.cancel()
        sock.close()


async def _watch(until: asyncio.Event, shutdown: _Shutdown) -> None:
    await until.wait()
    shutdown.request("asked to stop")


class _Shutdown:
    """What a signal does: cancel the start-up, or ask the HTTP server to finish."""

    def __init__(self, main_task: asyncio.Task[object] | None) -> None:
        self.main_task = main_task
        self.server: uvicorn.Server | None = None
        self.balancer: ConnectionBalancer | None = None
        self.requested = False

    def on_signal(self, sig: signal.Signals) -> None:
        self.request(f"received {sig.name}")

    def request(self, reason: str) -> None:
        if self.requested:
            if self.server is not None:
                # A second signal: stop waiting for open connections.
                self.server.force_exit = True
            return
        self.requested = True
        _log.info("%s, shutting down", reason)
        if self.balancer is not None:
            self.balancer.leave()  # no more connections handed to this worker
        if self.server is not None:
            self.server.should_exit = True
        elif self.main_task is not None:
            self.main_task.cancel()


def _freeze_startup_objects() -> None:
    """Exempt what start-up built (modules, app, metadata) from future GC passes.

    Hundreds of thousands of long-lived objects otherwise get scanned by every full
    collection, a pause of tens of milliseconds in the middle of some request.
    """
    gc.collect()
    gc.freeze()


async def _serve(
    platform: Platform,
    settings: RuntimeSettings,
    sock: socket.socket,
    shutdown: _Shutdown,
    on_ready: Callable[[str], None] | None,
    balancer: ConnectionBalancer | None,
) -> None:
    protocol = limited_protocol(connection_limits(settings), balancer)
    config = uvicorn.Config(
        platform.app,
        log_config=None,  # keep the JSON logging the CLI configured
        access_log=False,  # the service app writes its own access log
        lifespan="off",  # the platform is started and stopped around serving
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=protocol,
        # No WebSocket routes: left to "auto", uvicorn imports a WebSocket library in
        # every worker (after the fork, so into each worker's own memory).
        ws="none",
        timeout_keep_alive=settings.http_keep_alive_timeout_s,
    )
    server = _PlatformServer(config)
    shutdown.server = server
    shutdown.balancer = balancer
    if shutdown.requested:
        return
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers no event for "listening"; `started` flips once it is.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if server.started and balancer is not None:
        balancer.receive(lambda connection, held: _adopt(server, protocol, connection, held))
    if server.started:
        host, port = sock.getsockname()[:2]
        url = f"http://{_url_host(host)}:{port}"
        _log.info("serving on %s", url, extra={"url": url})
        if on_ready is not None:
            on_ready(url)
    try:
        await serving
    finally:
        if balancer is not None:
            balancer.stop_receiving()


def _adopt(
    server: uvicorn.Server,
    protocol: type[LimitedHttpToolsProtocol],
    connection: socket.socket,
    held: Callable[[], None],
) -> None:
    """Serve a connection another worker handed over, as uvicorn serves its own; `held()`
    once it is served here."""

    def adopted() -> LimitedHttpToolsProtocol:
        served = protocol(
            config=server.config, server_state=server.server_state, app_state=server.lifespan.state
        )
        served.adopted = True
        return served

    if server.should_exit:
        connection.close()  # stopping: the worker that handed it over had not seen it yet
        held()
        return
    loop = asyncio.get_running_loop()
    task = loop.create_task(loop.connect_accepted_socket(adopted, connection))
    _adoptions.add(task)
    task.add_done_callback(_adoptions.discard)
    task.add_done_callback(lambda _: held())


_adoptions: set[asyncio.Task[object]] = set()
"""Adoptions under way (the loop keeps only weak references to tasks)."""


@contextlib.contextmanager
def _signal_handlers(
    loop: asyncio.AbstractEventLoop, handler: Callable[[signal.Signals], None]
) -> Iterator[None]:
    installed: list[signal.Signals] = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, handler, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread (tests): the caller stops the server instead.
                pass
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
