"""The registry's hot reads: the same answers as the full routes, the same doors.

A hosted registry on real PostgreSQL, called as the gateway calls it. The hot path
answers a team's caller holding `models:read`; the operator (a token naming no
team) is always answered by the full route, so the operator's answer is the full
route's, to compare with byte for byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mlplane_contracts.scopes import MODELS_WRITE
from mlplane_runtime.db import Database
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_runtime.platform import Platform
from mlplane_testing.identity import signed_identity

from .hosting import SERVICE, as_member, hosted_registry, hot_answers, version_body


@pytest.fixture
async def platform(
    database_url: str,
    registry_database: Database,
    tmp_path: Path,
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    async with hosted_registry(
        database_url, registry_database, tmp_path, team, monkeypatch
    ) as hosted:
        yield hosted


@pytest.fixture
async def member(platform: Platform, team: str) -> AsyncIterator[httpx.AsyncClient]:
    async with as_member(platform, team) as http:
        assert (await http.post("/models", json={"name": "fraud"})).status_code == 201
        for number in (1, 2, 3):
            created = await http.post(
                "/models/fraud/versions", json=version_body(number, tags={"stage": "candidate"})
            )
            assert created.status_code == 201, created.text
        put = await http.put("/models/fraud/aliases/champion", json={"version": 2})
        assert put.status_code == 200, put.text
        yield http


HOT_READS = [
    ("/models/fraud/versions/2", "/models/{name}/versions/{version}"),
    ("/models/fraud/aliases/champion", "/models/{name}/aliases/{alias}"),
    ("/versions?model=fraud&limit=2", "/versions"),
]


@pytest.mark.parametrize(("path", "route"), HOT_READS)
async def test_a_hot_answer_is_the_full_routes_answer_byte_for_byte(
    platform: Platform, member: httpx.AsyncClient, team: str, path: str, route: str
) -> None:
    before = hot_answers(route)
    # The first answer may not be kept (a change notified meanwhile): a few reads.
    hot = [await member.get(path) for _ in range(4)]
    assert hot_answers(route) >= before + 2, "the hot path never answered"
    # The operator's token names no team: always the full route, with its own reads.
    operator = signed_identity(SERVICE, team=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url=f"http://mlplane/{SERVICE}"
    ) as raw:
        answered = hot_answers(route)
        full = await raw.get(path, headers={IDENTITY_HEADER: operator, "X-Mlplane-Team": team})
        assert hot_answers(route) == answered, "the operator was answered hot"
    assert full.status_code == 200, full.text
    for answer in hot:
        assert answer.status_code == 200
        assert answer.content == full.content
        assert answer.headers.get("etag") == full.headers.get("etag")
        assert answer.headers["content-type"] == full.headers["content-type"]


async def test_a_search_written_in_another_order_is_the_same_cached_answer(
    member: httpx.AsyncClient,
) -> None:
    for _ in range(5):  # until it is kept (a change notified meanwhile refuses it)
        before = hot_answers("/versions")
        first = await member.get("/versions", params=[("model", "fraud"), ("limit", "2")])
        if hot_answers("/versions") > before:
            break
    before = hot_answers("/versions")
    second = await member.get("/versions", params=[("limit", "2"), ("model", "fraud")])
    assert hot_answers("/versions") == before + 1
    assert second.content == first.content
    assert [v["version"] for v in second.json()["versions"]] == [1, 2]


async def test_hot_reads_see_every_acknowledged_write(member: httpx.AsyncClient) -> None:
    for path, _ in HOT_READS:
        await member.get(path)
    created = await member.post("/models/fraud/versions", json=version_body(4))
    assert created.status_code == 201
    moved = await member.put("/models/fraud/aliases/champion", json={"version": 4})
    assert moved.status_code == 200
    tagged = await member.patch("/models/fraud/versions/2", json={"tags": {"stage": "prod"}})
    assert tagged.status_code == 200

    alias = await member.get("/models/fraud/aliases/champion")
    assert alias.json()["version"]["version"] == 4
    version = await member.get("/models/fraud/versions/2")
    assert version.json()["tags"] == {"stage": "prod"}
    assert version.headers["etag"] == tagged.headers["etag"]
    page = await member.get("/versions", params={"model": "fraud", "limit": 10})
    assert [v["version"] for v in page.json()["versions"]] == [1, 2, 3, 4]


async def test_a_cached_answer_is_never_given_to_another_team(
    platform: Platform, member: httpx.AsyncClient
) -> None:
    for path, _ in HOT_READS:
        assert (await member.get(path)).status_code == 200
    async with as_member(platform, "other-team") as stranger:
        for path in ("/models/fraud/versions/2", "/models/fraud/aliases/champion"):
            answer = await stranger.get(path)
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
        page = await stranger.get("/versions", params={"model": "fraud", "limit": 2})
        assert page.status_code == 200
        assert page.json()["versions"] == []


@pytest.mark.parametrize("path", [path for path, _ in HOT_READS])
async def test_a_cached_answer_still_needs_a_verified_caller_with_the_read_scope(
    platform: Platform, member: httpx.AsyncClient, team: str, path: str
) -> None:
    assert (await member.get(path)).status_code == 200
    assert (await member.get(path)).status_code == 200
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url=f"http://mlplane/{SERVICE}"
    ) as raw:
        nobody = await raw.get(path)
        assert nobody.status_code == 401
        forged = signed_identity(SERVICE, team=team, secret="another-secret-" + "x" * 40)
        assert (await raw.get(path, headers={IDENTITY_HEADER: forged})).status_code == 401
        elsewhere = signed_identity("scanner", team=team)
        assert (await raw.get(path, headers={IDENTITY_HEADER: elsewhere})).status_code == 401
        writer_only = signed_identity(SERVICE, team=team, scopes=[MODELS_WRITE])
        refused = await raw.get(path, headers={IDENTITY_HEADER: writer_only})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/models/fraud/versions/2147483648",  # past the largest version number
        "/models/fraud/versions/0",
        "/models/Fraud/versions/2",
        "/models/fraud/versions/9",
        "/models/fraud/aliases/nobody",
    ],
)
async def test_what_a_hot_route_cannot_answer_gets_the_full_routes_error(
    member: httpx.AsyncClient, path: str
) -> None:
    answer = await member.get(path)
    assert answer.status_code in (404, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"


MLFLOW_READS = [
    (
        "/api/2.0/mlflow/model-versions/get?name=fraud&version=2",
        "/api/2.0/mlflow/model-versions/get",
    ),
    (
        "/ajax-api/2.0/mlflow/registered-models/alias?name=fraud&alias=champion",
        "/ajax-api/2.0/mlflow/registered-models/alias",
    ),
]


@pytest.mark.parametrize(("path", "route"), MLFLOW_READS)
async def test_mlflows_reads_are_hot_and_the_same_as_its_routes(
    platform: Platform, member: httpx.AsyncClient, team: str, path: str, route: str
) -> None:
    before = hot_answers(route)
    hot = [await member.get(path) for _ in range(3)]
    assert hot_answers(route) == before + 3, "the hot path did not answer"
    operator = signed_identity(SERVICE, team=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url=f"http://mlplane/{SERVICE}"
    ) as raw:
        full = await raw.get(path, headers={IDENTITY_HEADER: operator, "X-Mlplane-Team": team})
    assert full.status_code == 200, full.text
    assert hot_answers(route) == before + 3
    for answer in hot:
        assert answer.status_code == 200
        assert answer.content == full.content
        assert answer.headers["content-type"] == full.headers["content-type"]
    assert full.json()["model_version"]["version"] == "2"


async def test_mlflows_reads_see_every_acknowledged_write(member: httpx.AsyncClient) -> None:
    alias = "/api/2.0/mlflow/registered-models/alias?name=fraud&alias=champion"
    version = "/api/2.0/mlflow/model-versions/get?name=fraud&version=3"
    assert (await member.get(alias)).json()["model_version"]["version"] == "2"
    assert (await member.get(version)).json()["model_version"]["tags"] == [
        {"key": "stage", "value": "candidate"}
    ]
    await member.put("/models/fraud/aliases/champion", json={"version": 3})
    await member.patch("/models/fraud/versions/3", json={"tags": {"stage": "prod"}})
    assert (await member.get(alias)).json()["model_version"]["version"] == "3"
    assert (await member.get(version)).json()["model_version"]["tags"] == [
        {"key": "stage", "value": "prod"}
    ]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/2.0/mlflow/model-versions/get?name=fraud&version=9", "RESOURCE_DOES_NOT_EXIST"),
        ("/api/2.0/mlflow/model-versions/get?name=fraud&version=x", "INVALID_PARAMETER_VALUE"),
        ("/api/2.0/mlflow/registered-models/alias?name=fraud&alias=no", "RESOURCE_DOES_NOT_EXIST"),
        ("/api/2.0/mlflow/model-versions/get?name=fraud", "INVALID_PARAMETER_VALUE"),
    ],
)
async def test_mlflow_reads_the_hot_path_cannot_answer_get_mlflows_errors(
    member: httpx.AsyncClient, path: str, code: str
) -> None:
    answer = await member.get(path)
    assert answer.json()["error_code"] == code, answer.text
