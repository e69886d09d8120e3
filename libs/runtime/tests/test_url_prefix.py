"""A plug-in's URL prefix: `/<name>` by default, another (or the root) when it says so."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from mlplane_runtime.app import create_service_app
from mlplane_runtime.bus.embedded import EmbeddedTransport
from mlplane_runtime.db import create_database
from mlplane_runtime.platform.hosted_service import HostedService
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin
from mlplane_runtime.settings import RuntimeSettings
from sqlalchemy import MetaData

# Never connected to: building routes touches neither the database nor the bus.
UNUSED_DATABASE = "postgresql+asyncpg://nobody@127.0.0.1:9/none"


def ping_parts(context: ServiceContext) -> ServiceParts:
    router = APIRouter()

    @router.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"service": context.name}

    return ServiceParts(routers=[router])


def plugin(url_prefix: str | None) -> ServicePlugin:
    return ServicePlugin(
        name="door",
        schema="door",
        metadata=MetaData(schema="door"),
        build=ping_parts,
        url_prefix=url_prefix,
    )


def paths_of(url_prefix: str | None, tmp_path: Path) -> set[str]:
    database = create_database(UNUSED_DATABASE)
    hosted = HostedService(
        plugin(url_prefix),
        RuntimeSettings(),
        database,
        EmbeddedTransport(database.engine),
        tmp_path,
    )
    app = create_service_app("door", routers=[hosted.router()])
    return set(app.openapi()["paths"])


def test_routes_are_under_the_service_name_by_default(tmp_path: Path) -> None:
    paths = paths_of(None, tmp_path)
    assert "/door/v1/ping" in paths
    assert any(path.startswith("/door/dead-letters") for path in paths)


def test_routes_can_be_mounted_at_the_root_with_dead_letters_still_under_the_name(
    tmp_path: Path,
) -> None:
    paths = paths_of("", tmp_path)
    assert "/v1/ping" in paths
    assert "/door/v1/ping" not in paths
    assert any(path.startswith("/door/dead-letters") for path in paths)


def test_routes_can_be_mounted_under_another_prefix(tmp_path: Path) -> None:
    assert "/api/v1/ping" in paths_of("/api", tmp_path)


async def test_a_root_mounted_route_answers_over_http(tmp_path: Path) -> None:
    database = create_database(UNUSED_DATABASE)
    hosted = HostedService(
        plugin(""), RuntimeSettings(), database, EmbeddedTransport(database.engine), tmp_path
    )
    app = create_service_app("door", routers=[hosted.router()])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://door.test"
    ) as client:
        response = await client.get("/v1/ping")
    assert response.status_code == 200
    assert response.json() == {"service": "door"}


@pytest.mark.parametrize("prefix", ["v1", "/v1/", "/"])
def test_a_prefix_that_is_not_a_path_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="url_prefix"):
        plugin(prefix)
