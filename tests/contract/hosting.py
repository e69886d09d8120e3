"""Every installed service plug-in hosted in one `Platform` on the real test PostgreSQL,
each in a throwaway schema, on the in-process bus, with what the relays publish recorded.

The platform is the one `mlplane up` runs: each service's real composition root, its
consumer (decoding, inbox, handlers), its outbox relay and workers. The only addition
is `RecordingTransport`: the in-process transport, unchanged, keeping a copy of every
message a relay hands it. Those are the service's outbox rows as committed (headers,
body, content type: the bytes RabbitMQ would carry), so the contract tests see exactly
what each producer emits and then what each consumer made of it.

Plug-ins are found through the `mlplane.services` entry points, as the host finds
them, and made with their module's `make_plugin(schema=...)` so each gets its own
schema; a service installed later (drift) is hosted with no change here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from unittest import mock

import uvicorn
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.bus.embedded import EmbeddedTransport
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.platform import Platform, bind_http_socket
from mlplane_runtime.service import ENTRY_POINT_GROUP, ServicePlugin
from mlplane_runtime.settings import RuntimeSettings
from sqlalchemy import text

START_S = 90.0
BOOTSTRAP_KEY = "contract-bootstrap-admin-key-" + "0123456789abcdef"


@dataclass(frozen=True)
class Published:
    """One message a relay published: an outbox row as committed."""

    routing_key: str
    message_id: str
    headers: Mapping[str, object]
    body: bytes
    content_type: str


class RecordingTransport(EmbeddedTransport):
    """The in-process transport, keeping a copy of every published message."""

    published: list[Published]

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        await super().publish(messages)
        # Recorded once the bus holds them: what consumers will be handed.
        self.published.extend(
            Published(
                routing_key=m.routing_key,
                message_id=m.message_id,
                headers=dict(m.headers),
                body=bytes(m.body),
                content_type=m.content_type,
            )
            for m in messages
        )


@dataclass
class Hosted:
    """A started platform and what it recorded."""

    platform: Platform
    schemas: dict[str, str]
    transport: RecordingTransport
    published: list[Published] = field(default_factory=list)

    @property
    def database(self) -> Database:
        return self.platform.database

    async def outbox_backlog(self) -> dict[str, int]:
        """Rows each hosted service still owes the bus."""
        backlog: dict[str, int] = {}
        async with self.database.engine.connect() as connection:
            for service, schema in self.schemas.items():
                count = await connection.scalar(text(f'SELECT count(*) FROM "{schema}".outbox'))
                backlog[service] = int(count or 0)
        return backlog

    async def inbox(self, service: str) -> set[tuple[str, str]]:
        """`(source, id)` of every event `service`'s consumer handled and committed."""
        schema = self.schemas[service]
        async with self.database.engine.connect() as connection:
            rows = await connection.execute(text(f'SELECT source, event_id FROM "{schema}".inbox'))
            return {(str(source), str(event_id)) for source, event_id in rows}


def installed_services() -> dict[str, str]:
    """Installed service name -> the module of its entry point (`mlplane_x.main`)."""
    return {
        entry.name: entry.value.partition(":")[0] for entry in entry_points(group=ENTRY_POINT_GROUP)
    }


def plugin_in_schema(module: str, schema: str) -> ServicePlugin:
    """The service's plug-in made by its module's `make_plugin(schema=...)`."""
    make = getattr(import_module(module), "make_plugin", None)
    if make is None:
        raise AssertionError(
            f"{module} has no make_plugin(schema=...): the contract tests cannot host it "
            "in a schema of its own"
        )
    plugin = make(schema=schema)
    assert isinstance(plugin, ServicePlugin), f"{module}.make_plugin made {plugin!r}"
    return plugin


@contextlib.contextmanager
def only_environment(environment: Mapping[str, str]) -> Iterator[None]:
    """`environment` set and the caller's other `MLPLANE_*` variables unset (the
    identity secret and the tests' own settings kept), then restored."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLPLANE_")}
    kept = ("MLPLANE_TEST_", "MLPLANE_IDENTITY_SECRET")
    for name in saved:
        if not name.startswith(kept):
            del os.environ[name]
    os.environ.update(environment)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("MLPLANE_")]:
            del os.environ[name]
        os.environ.update(saved)


@contextlib.asynccontextmanager
async def hosted_platform(
    database_url: str,
    data_dir: Path,
    environment: Mapping[str, str],
    *,
    retry_max_attempts: int = 3,
) -> AsyncIterator[Hosted]:
    """Every installed service in one started platform; stopped and its schemas dropped
    when the block ends. `environment` is what the services read their settings from."""
    suffix = uuid.uuid4().hex[:8]
    services = installed_services()
    schemas = {name: f"t_con_{name[:4]}_{suffix}" for name in services}
    bus_schema = f"t_con_bus_{suffix}"
    settings = RuntimeSettings(
        env="dev",
        database_url=database_url,
        amqp_url=None,
        data_dir=data_dir,
        http_port=8080,  # not served: the tests call the app in process
        retry_max_attempts=retry_max_attempts,
        retry_base_delay_s=0.05,
    )
    plugins = [plugin_in_schema(module, schemas[name]) for name, module in services.items()]
    platform = Platform(settings, plugins, bus_schema=bus_schema)
    made: list[RecordingTransport] = []

    def recording(*args: object, **kwargs: object) -> RecordingTransport:
        transport = RecordingTransport(*args, **kwargs)  # type: ignore[arg-type]
        transport.published = []
        made.append(transport)
        return transport

    try:
        with (
            only_environment(environment),
            mock.patch("mlplane_runtime.platform.host.EmbeddedTransport", recording),
        ):
            await platform.start()
        [transport] = made
        yield Hosted(
            platform=platform, schemas=schemas, transport=transport, published=transport.published
        )
    finally:
        await platform.stop()
        database = create_database(database_url)
        try:
            for schema in (*schemas.values(), bus_schema):
                await database.drop_schema(schema)
        finally:
            await database.dispose()


@dataclass(frozen=True)
class Served:
    """A platform served over real HTTP from its own thread (for synchronous callers)."""

    url: str
    hosted: Hosted


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the signals


@contextlib.contextmanager
def served_platform(
    database_url: str, data_dir: Path, environment: Mapping[str, str]
) -> Iterator[Served]:
    """`hosted_platform` on an event loop of its own, served on 127.0.0.1 (a free
    port) until the block ends; then stopped and its schemas dropped."""
    sock = bind_http_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    started: Future[Hosted] = Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            async with hosted_platform(database_url, data_dir, environment) as hosted:
                server = _Server(
                    uvicorn.Config(
                        hosted.platform.app, log_config=None, access_log=False, lifespan="off"
                    )
                )
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started and not serving.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                if serving.done():
                    serving.result()
                    raise RuntimeError("the HTTP server stopped before it started")
                started.set_result(hosted)
                while not stop.is_set():  # noqa: ASYNC110 (a thread's event, not a loop's)
                    await asyncio.sleep(0.05)
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(serving, 10)
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(BaseException):
            loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, name="contract-platform", daemon=True)
    thread.start()
    try:
        hosted = started.result(START_S)
        yield Served(url=f"http://127.0.0.1:{port}", hosted=hosted)
    finally:
        stop.set()
        thread.join(60)
        sock.close()
