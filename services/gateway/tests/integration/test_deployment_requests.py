"""Deployment requests (`POST /v1/teams/{team}/deployment-requests`): the gateway emits
`deployment.requested` through its outbox, as the caller it verified, for the caller's
own team; bad input is a problem document and nothing is emitted.

That the deployer takes such a request and deploys is shown on the hosted platform by
the contract flow (tests/contract/flow.py: the deployment it commits is the one asked
for here).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from mlplane_contracts.events import DEPLOYMENT_REQUESTED, DeploymentRequested

from ..conftest import Harness

ASK = {"model": "fraud", "version": 3, "environment": "staging", "reason": "green in dev"}
PROBLEM = "application/problem+json"


def path(team: str) -> str:
    return f"/v1/teams/{team}/deployment-requests"


async def test_a_request_is_emitted_as_the_verified_caller_of_the_team(
    harness: Harness, team: str
) -> None:
    key = await harness.create_key(team, ["deploy:write"])
    answer = await harness.client.post(path(team), json=ASK, headers=harness.bearer(key["key"]))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "accepted"
    assert body["location"] == f"/v1/deployer/deployments/{body['deployment_id']}"

    [event] = await harness.outbox()
    assert event.type == DEPLOYMENT_REQUESTED
    assert event.id == body["event_id"]
    assert event.source == "/mlplane/gateway"
    assert event.subject == f"models/{team}/fraud/versions/3"
    data = event.data
    assert isinstance(data, DeploymentRequested)
    assert data.deployment_id == UUID(body["deployment_id"])
    assert (data.team, data.model, data.version, data.environment.value) == (
        team,
        "fraud",
        3,
        "staging",
    )
    assert data.reason == "green in dev"
    # Who asked is the key the gateway verified, never something the body says.
    assert data.requested_by == f"apikey:{key['id']}"


async def test_the_same_idempotency_key_names_the_same_deployment_and_asks_once(
    harness: Harness, team: str, other_team: str
) -> None:
    token = await harness.key_token(team, "deploy:write")
    headers = {**harness.bearer(token), "Idempotency-Key": "release-2026-12-05"}
    first = await harness.client.post(path(team), json=ASK, headers=headers)
    again = await harness.client.post(path(team), json=ASK, headers=headers)
    assert first.status_code == 202, first.text
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    assert again.json()["deployment_id"] == first.json()["deployment_id"]
    assert again.json()["event_id"] == first.json()["event_id"]
    # Another team's same key is its own request.
    theirs = await harness.key_token(other_team, "deploy:write")
    other = await harness.client.post(
        path(other_team),
        json=ASK,
        headers={**harness.bearer(theirs), "Idempotency-Key": "release-2026-12-05"},
    )
    assert other.status_code == 202, other.text
    assert other.json()["deployment_id"] != first.json()["deployment_id"]
    assert [e.data.team for e in await harness.outbox()] == [team, other_team]  # type: ignore[attr-defined]


async def test_without_an_idempotency_key_each_request_is_a_new_deployment(
    harness: Harness, team: str
) -> None:
    token = await harness.key_token(team, "deploy:write")
    ids = set()
    for _ in range(2):
        answer = await harness.client.post(path(team), json=ASK, headers=harness.bearer(token))
        assert answer.status_code == 202, answer.text
        ids.add(answer.json()["deployment_id"])
    assert len(ids) == 2
    assert len(await harness.outbox()) == 2


@pytest.mark.parametrize(
    "body",
    [
        {**ASK, "version": 0},
        {**ASK, "environment": "moon"},
        {**ASK, "model": "Not_A_Label"},
        {**ASK, "reason": "two\nlines"},
        {**ASK, "requested_by": "someone-else"},
        {"model": "fraud", "environment": "dev"},
        [],
    ],
    ids=[
        "version-0",
        "environment",
        "model",
        "reason-control",
        "requested-by",
        "no-version",
        "list",
    ],
)
async def test_bad_input_is_a_problem_and_emits_nothing(
    harness: Harness, team: str, body: Any
) -> None:
    token = await harness.key_token(team, "deploy:write")
    answer = await harness.client.post(path(team), json=body, headers=harness.bearer(token))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert await harness.outbox() == []


async def test_only_deploy_write_for_the_own_team_may_ask(
    harness: Harness, team: str, other_team: str
) -> None:
    reader = await harness.key_token(team, "models:read", "models:write", "deploy:approve")
    denied = await harness.client.post(path(team), json=ASK, headers=harness.bearer(reader))
    assert denied.status_code == 403, denied.text
    assert denied.headers["content-type"].startswith(PROBLEM)

    theirs = await harness.key_token(other_team, "deploy:write")
    hidden = await harness.client.post(path(team), json=ASK, headers=harness.bearer(theirs))
    assert hidden.status_code == 404, hidden.text
    assert hidden.headers["content-type"].startswith(PROBLEM)

    nobody = await harness.client.post(path(team), json=ASK)
    assert nobody.status_code == 401, nobody.text
    assert await harness.outbox() == []
