"""Who may use the MLflow webhooks routes: every route against every way to fail.

The gateway alone (the harness: real PostgreSQL, the test's schema). The routes need
`events:subscribe` and answer MLflow's error codes; another team's webhook is not
found, whatever the route; bad input is INVALID_PARAMETER_VALUE, never a 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import LOCAL_SINK, Harness

BASE = "/api/2.0/mlflow/webhooks"


async def webhook_of(harness: Harness, team: str) -> tuple[str, dict[str, str]]:
    key = await harness.create_key(team, ["events:subscribe"])
    headers = harness.bearer(key["key"])
    created = await harness.client.post(
        BASE,
        json={
            "name": "hook",
            "url": LOCAL_SINK,
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
        },
        headers=headers,
    )
    assert created.status_code == 200, created.text
    webhook_id: str = created.json()["webhook"]["webhook_id"]
    return webhook_id, headers


def calls(webhook_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", f"{BASE}/{webhook_id}", {}),
        ("PATCH", f"{BASE}/{webhook_id}", {"json": {"description": "x"}}),
        ("POST", f"{BASE}/{webhook_id}/test", {"json": {}}),
        ("DELETE", f"{BASE}/{webhook_id}", {}),
    ]


async def test_no_credential_and_no_scope_are_refused_in_mlflows_codes(
    harness: Harness, team: str
) -> None:
    webhook_id, _ = await webhook_of(harness, team)
    reader = await harness.create_key(team, ["models:read"])
    for method, path, extra in [
        ("GET", BASE, {}),
        ("POST", BASE, {"json": {}}),
        *calls(webhook_id),
    ]:
        anonymous = await harness.client.request(method, path, **extra)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
        scoped = await harness.client.request(
            method, path, headers=harness.bearer(reader["key"]), **extra
        )
        assert scoped.status_code == 403, (method, path, scoped.text)
        assert scoped.json()["error_code"] == "PERMISSION_DENIED"


async def test_another_teams_webhook_is_not_found_and_not_listed(
    harness: Harness, team: str, other_team: str
) -> None:
    webhook_id, _ = await webhook_of(harness, team)
    intruder = harness.bearer((await harness.create_key(other_team, ["events:subscribe"]))["key"])
    for method, path, extra in calls(webhook_id):
        answer = await harness.client.request(method, path, headers=intruder, **extra)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    listed = await harness.client.get(BASE, headers=intruder)
    assert listed.json()["webhooks"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x", "url": LOCAL_SINK},
        {"name": "x", "url": LOCAL_SINK, "events": [{"entity": "X", "action": "Y"}]},
        {
            "name": "x",
            "url": "ftp://example.com/",
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
        },
        {"name": "x" * 300, "url": LOCAL_SINK, "events": []},
        {"name": "x", "url": LOCAL_SINK, "events": "everything"},
        {"name": "x", "url": LOCAL_SINK, "status": "SOMETIMES"},
    ],
)
async def test_bad_input_is_an_invalid_parameter(
    harness: Harness, team: str, body: dict[str, Any]
) -> None:
    key = await harness.create_key(team, ["events:subscribe"])
    answer = await harness.client.post(BASE, json=body, headers=harness.bearer(key["key"]))
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"]


async def test_the_operator_names_no_team_and_is_told_so(harness: Harness) -> None:
    answer = await harness.client.get(BASE, headers=harness.operator)
    assert answer.status_code in (400, 422), answer.text
    assert "team" in answer.json()["message"]
