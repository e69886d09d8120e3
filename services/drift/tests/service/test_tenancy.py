"""Teams are tenants: another team cannot read a team's references or reports, nor send
samples for its models (its own namespace has no such version); every route needs the
gateway's signed identity and its scope."""

from __future__ import annotations

from uuid import uuid4

import httpx
from mlplane_contracts.scopes import EVENTS_PUBLISH, MODELS_READ, MODELS_WRITE
from mlplane_testing.identity import GatewayIdentity

from .conftest import Hosted, as_, body
from .support.data import parquet, table


async def test_another_team_sees_nothing_and_cannot_send_samples(hosted: Hosted, team: str) -> None:
    other = f"team-{uuid4().hex[:8]}"
    await hosted.ready(team, table(2000, seed=1))
    await hosted.post(team, body(table(1000, seed=2, shift=2.0)))
    await hosted.judge()
    [report] = (await hosted.http.get("/models/fraud/reports", headers=as_(team))).json()["reports"]
    for path in (
        f"/reports/{report['id']}",
        f"/reports/{report['id']}?format=html",
        "/models/fraud/versions/1/reference",
    ):
        answer = await hosted.http.get(path, headers=as_(other))
        assert answer.status_code == 404, (path, answer.text)
        assert team not in answer.text
    listed = await hosted.http.get("/models/fraud/reports", headers=as_(other))
    assert listed.json() == {"reports": []}
    sent = await hosted.post(other, body(table(10, seed=3)))
    assert sent.status_code == 404
    assert "no version 1 registered for team " + other in sent.json()["detail"]
    replaced = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        content=parquet(table(10, seed=4)),
        headers={**as_(other), "content-type": "application/vnd.apache.parquet"},
    )
    assert replaced.status_code == 404
    [window] = await hosted.windows(team)
    assert window.sample_count == 1000  # untouched


async def test_every_route_needs_a_signed_identity_and_its_scope(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(500, seed=1))

    def client(scopes: set[str] | None) -> httpx.AsyncClient:
        # The same app, other credentials.
        auth = None if scopes is None else GatewayIdentity("drift", scopes=scopes)
        return httpx.AsyncClient(
            transport=hosted.transport, base_url="http://drift.test", auth=auth
        )

    async with client(None) as anonymous:
        answer = await anonymous.post("/samples", json=body(table(5, 1)), headers=as_(team))
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert (await anonymous.get("/models/fraud/reports", headers=as_(team))).status_code == 401
    async with client({MODELS_READ, MODELS_WRITE}) as modeller:
        answer = await modeller.post("/samples", json=body(table(5, 1)), headers=as_(team))
        assert answer.status_code == 403
        assert "events:publish" in answer.json()["detail"]
    async with client({EVENTS_PUBLISH}) as publisher:
        sent = await publisher.post("/samples", json=body(table(5, 1)), headers=as_(team))
        assert sent.status_code == 202, sent.text
        assert (await publisher.get("/models/fraud/reports", headers=as_(team))).status_code == 403
    async with client({MODELS_READ}) as reader:
        put = await reader.put(
            "/models/fraud/environments/prod/window", json={"count": 10}, headers=as_(team)
        )
        assert put.status_code == 403
        assert (await reader.get("/models/fraud/reports", headers=as_(team))).status_code == 200
