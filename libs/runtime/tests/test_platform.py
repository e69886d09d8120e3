"""The embedded platform hosting service plug-ins, end to end over HTTP.

Against the real PostgreSQL (and RabbitMQ for the `rabbit` runs): two instances of
the example service are hosted by one `Platform`; an alias written through one's
HTTP API is an event both handle exactly once. Other engineers use the same
servers at once, so every service name and schema is unique to its test, the
example handler records every alias event it sees (others' included), and
assertions look only at this test's subjects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
from mlplane_contracts.subjects import alias_subject
from mlplane_runtime.bus.rabbit_topology import delete_service_queues
from mlplane_runtime.db import Database
from mlplane_runtime.platform import (
    Platform,
    PlatformStartFailed,
    PortUnavailable,
    bind_http_socket,
)
from mlplane_runtime.service import (
    PluginDiscoveryError,
    ServicePlugin,
    discover_services,
    find_service,
)
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity
from sqlalchemy import MetaData, func, select

from .fixtures.example_service.plugin import make_plugin

FIXTURES = Path(__file__).parent / "fixtures"
WAIT_S = 30.0
T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid4().hex[:10]}"


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """The first non-None answer of `probe`, polled for at most WAIT_S."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                answer = await probe()
                if answer is not None:
                    return answer
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} (waited {WAIT_S:g} s)") from None


@dataclass
class Hosted:
    platform: Platform
    http: httpx.AsyncClient
    services: list[str]


@pytest.fixture(params=["embedded", "rabbit"])
def bus(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def hosted(
    bus: str, database_url: str, amqp_url: str, database: Database, tmp_path: Path
) -> AsyncIterator[Hosted]:
    """Two example services (`ex<id>a`, `ex<id>b`) on one started platform."""
    base = unique("ex")
    names = [f"{base}a", f"{base}b"]
    plugins = [make_plugin(name, unique("t_")) for name in names]
    bus_schema = unique("t_")
    settings = RuntimeSettings(
        database_url=database_url,
        amqp_url=amqp_url if bus == "rabbit" else None,
        data_dir=tmp_path / "data",
        retry_max_attempts=2,
        retry_base_delay_s=0.05,
    )
    platform = Platform(settings, plugins, bus_schema=bus_schema)
    try:
        await platform.start()
        transport = httpx.ASGITransport(app=platform.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://mlplane", auth=GatewayIdentity(None)
        ) as http:
            yield Hosted(platform, http, names)
    finally:
        await platform.stop()
        for plugin in plugins:
            await database.drop_schema(plugin.schema)
        await database.drop_schema(bus_schema)
        if bus == "rabbit":
            for name in names:
                await delete_service_queues(amqp_url, name, retry=settings.retry_policy())


async def write_alias(http: httpx.AsyncClient, service: str, team: str, alias: str) -> str:
    response = await http.post(
        f"/{service}/aliases",
        json={"team": team, "model": "fraud", "alias": alias, "version": 7},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["subject"])


async def seen(http: httpx.AsyncClient, service: str, subject: str) -> list[dict[str, Any]]:
    response = await http.get(f"/{service}/seen", params={"subject": subject})
    assert response.status_code == 200, response.text
    return list(response.json())


class TestHostedServices:
    async def test_event_emitted_by_one_service_is_handled_once_by_every_consumer(
        self, hosted: Hosted
    ) -> None:
        producer, other = hosted.services
        subject = await write_alias(hosted.http, producer, unique("team-"), "champion")

        for service in (producer, other):

            async def handled_by(service: str = service) -> list[dict[str, Any]] | None:
                return await seen(hosted.http, service, subject) or None

            await eventually(handled_by, f"{service} never handled {subject}")

        # Nothing is owed to the bus any more, so no further delivery can come.
        producer_tables = hosted.platform.services[0].plugin.messaging()

        async def outbox_drained() -> bool | None:
            async with hosted.platform.database.sessions() as session:
                left = await session.scalar(
                    select(func.count()).select_from(producer_tables.outbox)
                )
            return True if left == 0 else None

        await eventually(outbox_drained, "the outbox was never drained")
        for service in (producer, other):
            events = await seen(hosted.http, service, subject)
            assert len(events) == 1
            assert events[0]["source"] == f"/mlplane/{producer}"
            assert events[0]["version"] == 7

    async def test_readiness_checks_the_database_and_the_bus(self, hosted: Hosted) -> None:
        response = await hosted.http.get("/readyz")

        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}

    async def test_refused_event_is_listed_and_replayed_over_http(self, hosted: Hosted) -> None:
        producer, consumer = hosted.services
        await write_alias(hosted.http, producer, unique("team-"), "refused")

        async def listed() -> list[dict[str, Any]] | None:
            response = await hosted.http.get(f"/{consumer}/dead-letters")
            assert response.status_code == 200, response.text
            letters = [
                letter
                for letter in response.json()["dead_letters"]
                if "refuses the alias" in letter["reason"]
            ]
            return letters or None

        letters = await eventually(listed, "the refused event was never dead-lettered")
        assert letters[0]["routing_key"] == "io.mlplane.model.alias.changed.v1"
        assert letters[0]["attempts"] == 1  # bad input is not retried

        replay = await hosted.http.post(
            f"/{consumer}/dead-letters/replay", json={"ids": [letters[0]["id"]]}
        )
        assert replay.status_code == 200
        assert replay.json() == {"replayed": 1}

    async def test_unknown_route_answers_problem_json(self, hosted: Hosted) -> None:
        response = await hosted.http.get(f"/{hosted.services[0]}/nothing-here")

        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


class TestPlatformLifecycle:
    async def test_the_database_pool_is_the_size_the_settings_give(
        self, database_url: str, database: Database, tmp_path: Path
    ) -> None:
        bus_schema = unique("t_")
        settings = RuntimeSettings(
            database_url=database_url,
            data_dir=tmp_path,
            database_pool_size=3,
            database_max_overflow=1,
        )
        platform = Platform(settings, [], bus_schema=bus_schema)
        try:
            await platform.start()
            pool = platform.database.engine.pool
            assert pool.size() == 3  # type: ignore[attr-defined]
            assert pool._max_overflow == 1  # type: ignore[attr-defined]
        finally:
            await platform.stop()
            await database.drop_schema(bus_schema)

    async def test_platform_with_no_services_serves_health_and_metrics(
        self, database_url: str, database: Database, tmp_path: Path
    ) -> None:
        bus_schema = unique("t_")
        settings = RuntimeSettings(database_url=database_url, data_dir=tmp_path)
        platform = Platform(settings, [], bus_schema=bus_schema)
        try:
            await platform.start()
            transport = httpx.ASGITransport(app=platform.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mlplane") as http:
                health = await http.get("/healthz")
                ready = await http.get("/readyz")
                metrics = await http.get("/metrics")
        finally:
            await platform.stop()
            await database.drop_schema(bus_schema)

        assert health.status_code == 200
        assert ready.status_code == 200
        assert "mlplane_events_published_total" in metrics.text

    async def test_start_logs_each_service_with_its_schema_and_event_types(
        self,
        database_url: str,
        database: Database,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="mlplane.platform")
        plugin = make_plugin(unique("ex"), unique("t_"))
        bus_schema = unique("t_")
        settings = RuntimeSettings(database_url=database_url, data_dir=tmp_path)
        platform = Platform(settings, [plugin], bus_schema=bus_schema)
        try:
            await platform.start()
        finally:
            await platform.stop()
            await database.drop_schema(plugin.schema)
            await database.drop_schema(bus_schema)

        lines = [r.getMessage() for r in caplog.records if r.name == "mlplane.platform"]
        assert (
            f"hosting service {plugin.name}: schema {plugin.schema}, "
            "consumes io.mlplane.model.alias.changed.v1"
        ) in lines

    async def test_unreachable_database_fails_start_with_a_clear_error(
        self, tmp_path: Path
    ) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        settings = RuntimeSettings(
            database_url=f"postgresql://postgres:hunter2@127.0.0.1:{port}/nowhere",
            data_dir=tmp_path,
        )
        platform = Platform(settings, [make_plugin(unique("ex"), unique("t_"))])

        with pytest.raises(PlatformStartFailed, match="cannot reach the database") as failure:
            await platform.start()

        assert f"127.0.0.1:{port}" in failure.value.detail
        assert "hunter2" not in failure.value.detail
        with pytest.raises(RuntimeError):
            _ = platform.app

    async def test_unreachable_broker_fails_start_and_stops_what_started(
        self, database_url: str, database: Database, tmp_path: Path
    ) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        plugin = make_plugin(unique("ex"), unique("t_"))
        settings = RuntimeSettings(
            database_url=database_url,
            amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/",
            data_dir=tmp_path,
        )
        platform = Platform(settings, [plugin])
        try:
            with pytest.raises(PlatformStartFailed, match="cannot reach the message broker"):
                await platform.start()
            assert platform.services == ()
            with pytest.raises(RuntimeError):
                _ = platform.database
        finally:
            await database.drop_schema(plugin.schema)

    def test_taken_port_is_a_clear_error(self) -> None:
        taken = bind_http_socket("127.0.0.1", 0)
        try:
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(
                PortUnavailable, match=f"port {port} on 127.0.0.1 is already in use"
            ):
                bind_http_socket("127.0.0.1", port)
        finally:
            taken.close()

    def test_the_same_service_cannot_be_hosted_twice(self, tmp_path: Path) -> None:
        plugin = make_plugin(unique("ex"), unique("t_"))
        settings = RuntimeSettings(data_dir=tmp_path)

        with pytest.raises(ValueError, match="hosted twice"):
            Platform(settings, [plugin, plugin])

    async def test_embedded_postgres_keeps_data_across_a_restart(self, tmp_path: Path) -> None:
        name = unique("ex")
        plugin = make_plugin(name, "example")
        settings = RuntimeSettings(database_url=None, data_dir=tmp_path / "data")
        team = unique("team-")

        first = Platform(settings, [plugin])
        try:
            await first.start()
            async with _client(first) as http:
                subject = await write_alias(http, name, team, "champion")

                async def handled() -> list[dict[str, Any]] | None:
                    return await seen(http, name, subject) or None

                await eventually(handled, "the embedded bus never delivered")
                ready = await http.get("/readyz")
        finally:
            await first.stop()
        assert ready.status_code == 200
        assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()

        second = Platform(settings, [plugin])
        try:
            await second.start()
            async with _client(second) as http:
                alias = await http.get(f"/{name}/aliases/{team}/fraud/champion")
                events = await seen(http, name, subject)
        finally:
            await second.stop()

        assert alias.status_code == 200
        assert alias.json()["version"] == 7
        assert len(events) == 1
        assert subject == alias_subject(team, "fraud", "champion")


def _client(platform: Platform) -> httpx.AsyncClient:
    """A client signing as the gateway does for the (first) hosted service."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app),
        base_url="http://mlplane",
        auth=GatewayIdentity(platform.services[0].name),
    )


class TestServicePlugin:
    def test_discovery_finds_a_plugin_installed_through_its_entry_point(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        group = unique("mlplane.test.services.")
        _install_entry_point(tmp_path, group, "example", "example_service.plugin:plugin")
        monkeypatch.syspath_prepend(str(FIXTURES))
        monkeypatch.syspath_prepend(str(tmp_path))

        plugins = discover_services(group)

        assert [plugin.name for plugin in plugins] == ["example"]
        assert isinstance(plugins[0], ServicePlugin)
        assert plugins[0].schema == "example"

    def test_discovery_refuses_an_entry_point_that_is_not_a_plugin(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        group = unique("mlplane.test.services.")
        _install_entry_point(tmp_path, group, "broken", "json:loads")
        monkeypatch.syspath_prepend(str(tmp_path))

        with pytest.raises(PluginDiscoveryError, match="not a ServicePlugin"):
            discover_services(group)

    def test_finding_one_service_loads_only_its_entry_point(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        group = unique("mlplane.test.services.")
        _install_entry_point(tmp_path, group, "example", "example_service.plugin:plugin")
        # Another service that cannot even be imported: `mlplane serve example` must
        # not pay for (or trip over) the other installed services.
        _install_entry_point(tmp_path, group, "other", "no_such_module_anywhere:plugin")
        monkeypatch.syspath_prepend(str(FIXTURES))
        monkeypatch.syspath_prepend(str(tmp_path))

        assert find_service("example", group).schema == "example"
        with pytest.raises(PluginDiscoveryError, match="cannot be loaded"):
            find_service("missing", group)

    def test_no_installed_services_is_an_empty_platform(self) -> None:
        assert discover_services(unique("mlplane.test.nothing.")) == []

    def test_plugin_refuses_metadata_in_another_schema(self) -> None:
        with pytest.raises(ValueError, match="must use schema 'ours'"):
            ServicePlugin(name="ours", schema="ours", metadata=MetaData(schema="theirs"))

    def test_plugin_adds_the_messaging_tables_its_metadata_lacks(self) -> None:
        plugin = ServicePlugin(name="ours", schema="ours", metadata=MetaData(schema="ours"))

        tables = plugin.messaging()

        assert tables.outbox.fullname == "ours.outbox"
        assert plugin.messaging().inbox is tables.inbox  # found again, not added twice

    def test_plugin_refuses_a_name_no_queue_can_carry(self) -> None:
        with pytest.raises(ValueError, match="invalid service name"):
            ServicePlugin(name="Not A Name", schema="ours", metadata=MetaData(schema="ours"))


def _install_entry_point(site: Path, group: str, name: str, value: str) -> None:
    """A minimal installed distribution in `site` declaring one entry point."""
    dist_info = site / f"mlplane_test_{uuid4().hex[:8]}-0.0.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_info.name.split('-')[0]}\nVersion: 0.0.0\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")
