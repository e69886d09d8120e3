"""The real builder behind the facade: its builds read with models:read, a rebuild
asked with models:write, each seen by the builder as the caller's team."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter
from mlplane_builder.domain.builds import BuildRequest
from mlplane_builder.main import MIGRATIONS
from mlplane_builder.main import build as build_builder
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import BuildStore, define_tables
from mlplane_runtime.app import create_service_app
from mlplane_runtime.db import Database
from mlplane_runtime.deps import bind_service
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_testing.service import service_context

from .conftest import IDENTITY_SECRET, Gateway, RecordedRequests, Serve

READER = {"Authorization": "Bearer reader-token"}
WRITER = {"Authorization": "Bearer writer-token"}


@dataclass
class Builder:
    url: str
    seen: RecordedRequests
    build_id: int
    """A finished (failed) build of the test's team."""


@pytest.fixture
async def builder(
    registry_database: Database, database_url: str, http_server: Serve, team: str, tmp_path: Path
) -> AsyncIterator[Builder]:
    """The real builder's API under `/builder` on a free port, with one failed build."""
    schema = f"t_{uuid4().hex[:10]}"
    await registry_database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        tables = define_tables(schema)
        async with registry_database.sessions() as session:
            build = await BuildStore(session, tables).insert_pending(_request(team))
            assert build is not None
            # Finished (failed), so it may be rebuilt.
            await session.execute(
                tables.builds.update()
                .where(tables.builds.c.id == build.id)
                .values(status="failed", error="test", error_kind="permanent")
            )
            await session.commit()
        build_id = build.id
        # The builder's own `build`; it verifies what the gateway under test signs.
        context = service_context(
            "builder",
            registry_database,
            tables.messaging,
            data_dir=tmp_path / "builder",
            identity_secret=IDENTITY_SECRET,
        )
        parts = build_builder(context, tables, BuilderSettings(_env_file=None))  # type: ignore[call-arg]
        mounted = APIRouter(prefix="/builder")
        mounted.include_router(bind_service(parts.routers, context, parts))
        seen = RecordedRequests()
        app = create_service_app("builder", routers=[mounted])
        async with http_server(seen.wrap(app)) as url:
            yield Builder(f"{url}/builder", seen, build_id)
    finally:
        await registry_database.drop_schema(schema)


def _request(team: str) -> BuildRequest:
    return BuildRequest(
        team=team,
        model="fraud",
        version=1,
        framework="sklearn",
        artifact_uri="s3://models/fraud/1/model.pkl",
        artifact_sha256="0" * 64,
        artifact_size=10,
        git_repository="https://git.example/fraud",
        commit_sha="a" * 40,
        ci_run_url="https://ci.example/runs/1",
        registered_at=datetime.now(UTC),
    )


@pytest.fixture
async def client(
    builder: Builder, start_gateway: Callable[..., AbstractAsyncContextManager[Gateway]]
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        start_gateway({"builder": builder.url}) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        yield http


async def test_a_teams_builds_are_read_through_the_facade(
    client: httpx.AsyncClient, builder: Builder, team: str
) -> None:
    listed = await client.get("/v1/builder/builds", headers=READER)
    assert listed.status_code == 200, listed.text
    assert [b["id"] for b in listed.json()["builds"]] == [builder.build_id]
    one = await client.get(f"/v1/builder/builds/{builder.build_id}", headers=READER)
    assert one.status_code == 200, one.text
    assert one.json()["model"] == "fraud"
    assert builder.seen.headers[-1]["x-mlplane-identity"]
    assert builder.seen.headers[-1]["x-mlplane-team"] == team
    assert "authorization" not in builder.seen.headers[-1]


async def test_a_rebuild_needs_the_write_scope(client: httpx.AsyncClient, builder: Builder) -> None:
    url = f"/v1/builder/builds/{builder.build_id}/rebuild"
    refused = await client.post(url, headers=READER)
    assert refused.status_code == 403
    assert refused.json()["scope"] == "models:write"
    asked = await client.post(url, headers=WRITER)
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "pending"


async def test_a_missing_build_is_a_problem_from_the_builder(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/builder/builds/999999999", headers=READER)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["service"] == "builder"
