"""The whole platform (registry, builder, scanner, deployer, gateway) served over HTTP on
127.0.0.1, in one of two settings, for the security tests.

- `dev`: `MLPLANE_ENV=dev` and no identity setting at all: the platform makes its
  identity secret in `<data dir>/identity-secret` (what `make run` does), the gateway
  signs with it, the services verify with keys derived from it; artifacts on the
  local disk (the registry's signed-URL routes exist), in-process rate limits.
- `prod`: `RuntimeSettings(env="prod")`, a gateway secret key, the gateway's own
  `MLPLANE_GATEWAY_IDENTITY_SECRET` and each service only its own
  `MLPLANE_<SERVICE>_IDENTITY_KEY` (the README's production layout); artifacts in the
  real S3 server, rate limits in the real Redis; the deployer reaches the scanner at a
  configured URL with the scanner's key (`MLPLANE_DEPLOYER_SCANNER_*`), where dev finds
  it at the platform's own address with a key derived from the dev secret.

The platform runs on its own event loop in a thread, so synchronous tests (and
schemathesis) and asynchronous ones talk to it alike: over real HTTP. Every schema,
bucket and Redis prefix is unique; everything is dropped when the stack stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvicorn
from mlplane_builder.main import make_plugin as make_builder
from mlplane_contracts.envelope import CloudEvent
from mlplane_deployer.main import make_plugin as make_deployer
from mlplane_gateway.main import MIGRATIONS as GATEWAY_MIGRATIONS
from mlplane_gateway.main import build as build_gateway
from mlplane_gateway.tables import define_tables as gateway_tables
from mlplane_registry.main import make_plugin as make_registry
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.db import create_database
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.identity_secret import IDENTITY_SECRET_FILE
from mlplane_runtime.platform import Platform, bind_http_socket
from mlplane_runtime.platform.http_protocol import limited_protocol
from mlplane_runtime.platform.http_server import connection_limits
from mlplane_runtime.service import ServicePlugin
from mlplane_runtime.settings import RuntimeSettings
from mlplane_scanner.main import make_plugin as make_scanner
from mlplane_testing.delivery import as_delivered
from mlplane_testing.s3_server import S3Endpoint, delete_bucket

Mode = Literal["dev", "prod"]
FRONTED = ("registry", "builder", "scanner", "deployer")
"""The services the gateway fronts: each verifies the gateway's identity token."""
BOOTSTRAP_KEY = "security-bootstrap-admin-key-" + "0123456789abcdef"
GATEWAY_SECRET_KEY = "security-gateway-secret-key-" + "fedcba9876543210"
START_S = 90.0
T = TypeVar("T")


def _gateway(schema: str, hosted: tuple[str, ...]) -> ServicePlugin:
    """The gateway, told that the services this stack hosts are the ones installed here:
    an installed plug-in this stack does not host (drift) must answer 503 through the
    facade, as it would there."""
    tables = gateway_tables(schema)
    return ServicePlugin(
        name="gateway",
        schema=schema,
        metadata=tables.metadata,
        migrations=GATEWAY_MIGRATIONS,
        build=lambda context: build_gateway(context, tables, installed=frozenset(hosted)),
        url_prefix="",
        authenticates_callers=True,
    )


@dataclass
class Stack:
    """A started platform: where it answers, the secret its gateway signs with."""

    mode: Mode
    url: str
    identity_secret: bytes
    platform: Platform
    loop: asyncio.AbstractEventLoop
    bucket: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def service_key(self, service: str) -> bytes:
        """The key `service` verifies the gateway's tokens with."""
        return derive_identity_key(self.identity_secret, service)

    def run(self, make: Callable[[], Awaitable[T]], timeout_s: float = 60.0) -> T:
        """`make()` awaited on the platform's loop (its database, its transport)."""

        async def call() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return future.result(timeout_s)

    def deliver(self, service: str, events: list[CloudEvent]) -> None:
        """`events` handed to `service`'s consumer alone, as the bus delivers them (what it
        learns from them, no other service sees)."""
        [hosted] = [s for s in self.platform.services if s.name == service]

        async def deliver() -> None:
            for event in events:
                await hosted.consumer(as_delivered(event))

        self.run(deliver)

    def plant_dead_letter(self, service: str, event_type: str, data: Mapping[str, Any]) -> None:
        """A message `service` cannot decode (no CloudEvent attributes), holding `data`:
        dead-lettered at once. Returns once the service's queue lists it."""
        message_id = uuid.uuid4().hex
        transport = self.platform.transport

        async def plant() -> None:
            await transport.publish(
                [
                    OutboundMessage(
                        routing_key=event_type,
                        body=json.dumps(dict(data)).encode(),
                        headers={},
                        message_id=message_id,
                    )
                ]
            )
            async with asyncio.timeout(30):
                while not any(  # noqa: ASYNC110 (the transport offers no event to wait on)
                    letter.message_id == message_id
                    for letter in await transport.dead_letters(service, limit=1000)
                ):
                    await asyncio.sleep(0.05)

        self.run(plant)


def _environment(
    mode: Mode, secret: bytes, bucket: str | None, s3_url: str | None, port: int
) -> dict[str, str]:
    common = {
        "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
        "MLPLANE_GATEWAY_INITIAL_ADMIN_KEY": "false",
        # The matrix sends thousands of calls, wrong credentials too, from one address.
        "MLPLANE_GATEWAY_KEY_BURST": "1000000",
        "MLPLANE_GATEWAY_TEAM_BURST": "1000000",
        "MLPLANE_GATEWAY_AUTH_FAILURE_LIMIT": "1000000",
        "MLPLANE_GATEWAY_UPSTREAM_BREAKER_FAILURES": "1000000",
        "MLPLANE_BUILDER_BUILD_ATTEMPTS": "1",
        "MLPLANE_SCANNER_SCAN_ATTEMPTS": "1",
        "MLPLANE_DEPLOYER_POLL_INTERVAL_S": "0.2",
        "MLPLANE_DEPLOYER_RETRY_DELAY_S": "0.2",
    }
    if mode == "dev":
        return {**common, "MLPLANE_ENV": "dev"}
    assert bucket is not None
    assert s3_url is not None
    keys = {
        f"MLPLANE_{service.upper()}_IDENTITY_KEY": derive_identity_key(secret, service).hex()
        for service in FRONTED
    }
    return {
        **common,
        **keys,
        "MLPLANE_ENV": "prod",
        "MLPLANE_DEPLOYER_SCANNER_URL": f"http://127.0.0.1:{port}/scanner",
        "MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY": derive_identity_key(secret, "scanner").hex(),
        "MLPLANE_GATEWAY_SECRET_KEY": GATEWAY_SECRET_KEY,
        "MLPLANE_GATEWAY_IDENTITY_SECRET": secret.decode(),
        "MLPLANE_GATEWAY_REDIS_URL": os.environ.get(
            "MLPLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
        ),
        "MLPLANE_GATEWAY_RATE_LIMIT_KEY_PREFIX": f"mlplane-security:{uuid.uuid4().hex[:12]}",
        "MLPLANE_REGISTRY_S3_ENDPOINT_URL": s3_url,
        "MLPLANE_REGISTRY_S3_BUCKET": bucket,
        "MLPLANE_REGISTRY_S3_ACCESS_KEY": "security-tests",
        "MLPLANE_REGISTRY_S3_SECRET_KEY": "security-tests-secret",
    }


@contextlib.contextmanager
def _only(environment: Mapping[str, str]) -> Iterator[None]:
    """`environment` set and every other `MLPLANE_*` variable unset, then restored."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLPLANE_")}
    for name in saved:
        if not name.startswith("MLPLANE_TEST_"):
            del os.environ[name]
    os.environ.update(environment)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("MLPLANE_")]:
            del os.environ[name]
        os.environ.update(saved)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the signals


@contextlib.contextmanager
def running_stack(
    mode: Mode,
    database_url: str,
    data_dir: Path,
    *,
    team_locations: Mapping[str, list[str]],
    s3_url: str | None = None,
) -> Iterator[Stack]:
    """The platform in `mode`, serving until the block ends; then stopped, schemas dropped."""
    suffix = uuid.uuid4().hex[:8]
    schemas = {name: f"t_sec_{name[:3]}_{suffix}" for name in (*FRONTED, "gateway")}
    bus_schema = f"t_sec_bus_{suffix}"
    secret = secrets.token_hex(32).encode()
    bucket = f"sec-{suffix}" if mode == "prod" else None
    sock = bind_http_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    environment = _environment(mode, secret, bucket, s3_url, port)
    environment["MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS"] = json.dumps(dict(team_locations))
    settings = RuntimeSettings(
        env=mode,
        database_url=database_url,
        amqp_url=None,
        data_dir=data_dir,
        http_port=port,
        retry_max_attempts=1,
        retry_base_delay_s=0.05,
    )
    plugins = [
        make_registry(schema=schemas["registry"]),
        make_builder(schema=schemas["builder"]),
        make_scanner(schema=schemas["scanner"]),
        make_deployer(schema=schemas["deployer"]),
        _gateway(schemas["gateway"], hosted=FRONTED),
    ]
    platform = Platform(settings, plugins, bus_schema=bus_schema)
    loop = asyncio.new_event_loop()
    started: Future[None] = Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            await platform.start()
            server = _Server(
                uvicorn.Config(
                    platform.app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    http=limited_protocol(connection_limits(settings)),
                    timeout_graceful_shutdown=2,
                )
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            serving_error = serving.exception() if serving.done() else None
            if serving_error is not None:
                raise serving_error
            started.set_result(None)
            while not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, 10)
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise
        finally:
            await platform.stop()
            database = create_database(database_url)
            try:
                for schema in (*schemas.values(), bus_schema):
                    await database.drop_schema(schema)
            finally:
                await database.dispose()
            if bucket is not None and s3_url is not None:
                # An S3 server keeps a bucket's volumes until it is deleted: a shared
                # one runs out of them when test buckets are left behind.
                await delete_bucket(
                    S3Endpoint(s3_url, access_key="security-tests", secret_key="x"), bucket
                )

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(BaseException):
            loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, name=f"security-{mode}-platform", daemon=True)
    with _only(environment):
        thread.start()
        started.result(START_S)
    try:
        if mode == "dev":
            identity_secret = (data_dir / IDENTITY_SECRET_FILE).read_text().strip().encode()
        else:
            identity_secret = secret
        yield Stack(
            mode=mode,
            url=f"http://127.0.0.1:{port}",
            identity_secret=identity_secret,
            platform=platform,
            loop=loop,
            bucket=bucket,
        )
    finally:
        stop.set()
        thread.join(60)
        sock.close()
