"""The builder's HTTP API on the real PostgreSQL: lists, reads, rebuilds, team isolation,
problem+json errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mlplane_builder.domain import failures
from mlplane_builder.main import build
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context

from ..conftest import registered
from .builds import deliver_to, settings


@pytest.fixture
async def client(
    builder_database: Database, tables: BuilderTables, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The builder's API from its own `build` on a test context, served at the root."""
    context = service_context(
        "builder", builder_database, tables.messaging, data_dir=tmp_path / "builder"
    )
    app = service_app(context, build(context, tables, settings()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://builder.test", auth=GatewayIdentity("builder")
    ) as http:
        yield http


async def fail_first_due(uow_factory: UnitOfWorkFactory, tables: BuilderTables) -> None:
    async with uow_factory() as uow:
        service = BuilderService(uow, tables)
        build = await service.claim("w", 60)
        assert build is not None
        await service.record_failure(
            build,
            "w",
            failures.artifact_missing(build.request.artifact_uri),
            max_attempts=1,
            retry_delay_s=0,
        )
        await uow.commit()


async def test_builds_are_listed_newest_first_in_stable_pages(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
) -> None:
    await deliver_to(uow_factory, tables, *(registered(team, version=v) for v in range(1, 6)))
    headers = {"X-Mlplane-Team": team}
    first = await client.get("/builds", params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert [b["version"] for b in page["builds"]] == [5, 4]
    # A build arriving between pages does not shift the next page.
    await deliver_to(uow_factory, tables, registered(team, version=6))
    second = await client.get(
        "/builds", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
    )
    assert [b["version"] for b in second.json()["builds"]] == [3, 2]
    third = await client.get(
        "/builds", params={"limit": 2, "cursor": second.json()["next_cursor"]}, headers=headers
    )
    assert [b["version"] for b in third.json()["builds"]] == [1]
    assert third.json()["next_cursor"] is None


async def test_builds_filter_by_model_and_status(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
) -> None:
    await deliver_to(
        uow_factory,
        tables,
        registered(team, model="fraud"),
        registered(team, model="churn"),
    )
    await fail_first_due(uow_factory, tables)
    headers = {"X-Mlplane-Team": team}
    churn = (await client.get("/builds", params={"model": "churn"}, headers=headers)).json()
    assert [b["model"] for b in churn["builds"]] == ["churn"]
    failed = (await client.get("/builds", params={"status": "failed"}, headers=headers)).json()
    [only] = failed["builds"]
    assert only["model"] == "fraud"
    assert only["error_kind"] == "artifact_missing"
    assert only["retryable"] is False
    pending = (await client.get("/builds", params={"status": "pending"}, headers=headers)).json()
    assert [b["model"] for b in pending["builds"]] == ["churn"]


async def test_another_teams_build_is_not_found(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
) -> None:
    await deliver_to(uow_factory, tables, registered(team))
    [build] = (await client.get("/builds", headers={"X-Mlplane-Team": team})).json()["builds"]
    mine = await client.get(f"/builds/{build['id']}", headers={"X-Mlplane-Team": team})
    assert mine.status_code == 200
    assert mine.json()["status"] == "pending"
    theirs = await client.get(f"/builds/{build['id']}", headers={"X-Mlplane-Team": "other"})
    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    listed = await client.get("/builds", headers={"X-Mlplane-Team": "other"})
    assert listed.json()["builds"] == []


async def test_rebuild_of_a_failed_build_queues_it_again(
    client: httpx.AsyncClient, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
) -> None:
    await deliver_to(uow_factory, tables, registered(team))
    headers = {"X-Mlplane-Team": team}
    [build] = (await client.get("/builds", headers=headers)).json()["builds"]
    refused = await client.post(f"/builds/{build['id']}/rebuild", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["status"] == "pending"
    await fail_first_due(uow_factory, tables)
    again = await client.post(f"/builds/{build['id']}/rebuild", headers=headers)
    assert again.status_code == 202
    assert again.json()["status"] == "pending"
    assert again.json()["attempts"] == 0


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/builds", {}, {}),
        ("/builds", {"status": "exploded"}, {"X-Mlplane-Team": "a"}),
        ("/builds", {"cursor": "nope"}, {"X-Mlplane-Team": "a"}),
        ("/builds", {"limit": 0}, {"X-Mlplane-Team": "a"}),
        ("/builds/0", {}, {"X-Mlplane-Team": "a"}),
        ("/builds", {}, {"X-Mlplane-Team": "Not A Label"}),
    ],
)
async def test_bad_requests_are_problems(
    client: httpx.AsyncClient, path: str, params: dict[str, object], headers: dict[str, str]
) -> None:
    answer = await client.get(path, params=params, headers=headers)  # type: ignore[arg-type]
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
