"""The registry's hot write (a new version): the full route's answer and errors, and a
version created once, whichever path answered.

A hosted registry on real PostgreSQL, called as the gateway calls it. The operator
(a token naming no team) always goes to the full route: its answers are the
reference the hot route's are compared with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlplane_contracts.scopes import MODELS_READ
from mlplane_runtime.db import Database
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_runtime.platform import Platform
from mlplane_testing.identity import signed_identity

from .hosting import SERVICE, as_member, hosted_registry, hot_answers, version_body

ROUTE = "/models/{name}/versions"


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
        yield http


@pytest.fixture
async def operator(platform: Platform, team: str) -> AsyncIterator[httpx.AsyncClient]:
    """The operator acting for `team`: its token names no team, so never answered hot."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app),
        base_url=f"http://mlplane/{SERVICE}",
        headers={IDENTITY_HEADER: signed_identity(SERVICE, team=None), "X-Mlplane-Team": team},
    ) as http:
        yield http


def _hot_answers() -> float:
    return hot_answers(ROUTE)


async def _version_numbers(http: httpx.AsyncClient) -> list[int]:
    page = await http.get("/versions", params={"model": "fraud", "limit": 100})
    return [version["version"] for version in page.json()["versions"]]


async def test_a_hot_create_answers_as_the_full_route_does(
    member: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    before = _hot_answers()
    hot = await member.post("/models/fraud/versions", json=version_body(1))
    assert _hot_answers() == before + 1, "the hot route did not answer"
    full = await operator.post("/models/fraud/versions", json=version_body(2))
    assert _hot_answers() == before + 1, "the operator's create was answered hot"
    for answer, number in ((hot, 1), (full, 2)):
        assert answer.status_code == 201, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["location"] == f"models/fraud/versions/{number}"
        # The answer is the version as it is read afterwards, byte for byte.
        read = await operator.get(f"/models/fraud/versions/{number}")
        assert answer.content == read.content
        assert answer.headers["etag"] == read.headers["etag"]
    assert sorted(hot.json()) == sorted(full.json())
    assert await _version_numbers(operator) == [1, 2]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/models/nobody/versions", version_body(1), 404),  # no such model
        ("/models/fraud/versions", version_body(1, framework="cobol"), 422),  # invalid body
        ("/models/fraud/versions", {"framework": "onnx"}, 422),  # fields missing
        (  # outside the team's artifact locations
            "/models/fraud/versions",
            version_body(
                1, artifact={"uri": "s3://elsewhere/x", "size_bytes": 9, "sha256": "ab" * 32}
            ),
            422,
        ),
    ],
)
async def test_what_the_hot_route_cannot_create_gets_the_full_routes_error_and_no_version(
    member: httpx.AsyncClient, path: str, body: dict[str, Any], status: int
) -> None:
    before = _hot_answers()
    answer = await member.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert _hot_answers() == before
    assert await _version_numbers(member) == []


async def test_a_create_needs_a_verified_caller_with_the_write_scope(
    platform: Platform, member: httpx.AsyncClient, team: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url=f"http://mlplane/{SERVICE}"
    ) as raw:
        nobody = await raw.post("/models/fraud/versions", json=version_body(1))
        assert nobody.status_code == 401
        forged = signed_identity(SERVICE, team=team, secret="another-secret-" + "x" * 40)
        refused = await raw.post(
            "/models/fraud/versions", json=version_body(1), headers={IDENTITY_HEADER: forged}
        )
        assert refused.status_code == 401
        reader = signed_identity(SERVICE, team=team, scopes=[MODELS_READ])
        forbidden = await raw.post(
            "/models/fraud/versions", json=version_body(1), headers={IDENTITY_HEADER: reader}
        )
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"
    assert await _version_numbers(member) == []


async def test_another_teams_model_of_the_same_name_is_not_written(
    platform: Platform, member: httpx.AsyncClient
) -> None:
    async with as_member(platform, "other-team") as stranger:
        answer = await stranger.post("/models/fraud/versions", json=version_body(1))
        # Its artifact is looked at first: not in the other team's locations either.
        assert answer.status_code in (404, 422)
        assert answer.headers["content-type"] == "application/problem+json"
    assert await _version_numbers(member) == []


async def test_a_body_over_the_limit_is_refused_unread(member: httpx.AsyncClient) -> None:
    huge = version_body(1, status_message="x" * (2 * 1024 * 1024))
    answer = await member.post("/models/fraud/versions", json=huge)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert await _version_numbers(member) == []
