"""CI webhooks over HTTP against the real PostgreSQL: signatures, dedupe, the outbox."""

from __future__ import annotations

from uuid import uuid4

import pytest
from mlplane_contracts.events import CiRunCompleted
from mlplane_gateway.ingress.webhooks import github_signature

from ..conftest import Harness
from ..payloads import custom_run, gitlab_pipeline, raw, release, workflow_run


def github_headers(secret: str, body: bytes, event: str, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github_signature(secret, body),
    }


async def post_github(
    harness: Harness, team: str, secret: str, body: bytes, event: str, delivery: str, **params: str
) -> tuple[int, dict[str, object]]:
    response = await harness.client.post(
        f"/v1/webhooks/github/{team}",
        content=body,
        headers=github_headers(secret, body, event, delivery),
        params=params,
    )
    return response.status_code, response.json()


async def test_a_signed_workflow_run_becomes_one_ci_run_event(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(workflow_run())
    status, answer = await post_github(harness, team, secret, body, "workflow_run", "d-1")
    assert status == 202
    assert answer["status"] == "accepted"

    [event] = await harness.outbox()
    assert event.id == answer["event_id"]
    assert event.source == "/mlplane/gateway"
    assert event.subject == f"models/{team}/fraud/ci-runs"
    data = event.data
    assert isinstance(data, CiRunCompleted)
    assert (data.team, data.model, data.provider.value) == (team, "fraud", "github_actions")
    assert data.run_id == "30433642.1"
    assert data.conclusion.value == "succeeded"
    assert data.artifact is None
    assert data.lineage.ci_run_url == "https://github.com/acme/fraud/actions/runs/30433642"


async def test_a_replayed_delivery_answers_duplicate_and_emits_nothing(
    harness: Harness, team: str
) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(workflow_run())
    first = await post_github(harness, team, secret, body, "workflow_run", "d-replayed")
    again = await post_github(harness, team, secret, body, "workflow_run", "d-replayed")
    assert first[0] == 202
    assert again == (200, {"status": "duplicate", "event_id": first[1]["event_id"], "reason": None})
    assert len(await harness.outbox()) == 1


async def test_concurrent_copies_of_one_delivery_emit_once(harness: Harness, team: str) -> None:
    import asyncio

    secret = await harness.webhook_secret(team)
    body = raw(workflow_run())
    answers = await asyncio.gather(
        *(post_github(harness, team, secret, body, "workflow_run", "d-race") for _ in range(5))
    )
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 202]
    assert len(await harness.outbox()) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=0123",
        "signature-of-another-body",
    ],
)
async def test_a_bad_signature_is_refused_and_emits_nothing(
    harness: Harness, team: str, signature: str | None
) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(workflow_run())
    headers = github_headers(secret, body, "workflow_run", f"d-{uuid4()}")
    if signature is None:
        del headers["X-Hub-Signature-256"]
    elif signature == "signature-of-another-body":
        headers["X-Hub-Signature-256"] = github_signature(secret, body + b" ")
    else:
        headers["X-Hub-Signature-256"] = signature
    response = await harness.client.post(
        f"/v1/webhooks/github/{team}", content=body, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "www-authenticate" in response.headers
    assert await harness.outbox() == []


async def test_another_teams_secret_does_not_sign_for_this_team(
    harness: Harness, team: str, other_team: str
) -> None:
    await harness.webhook_secret(team)
    theirs = await harness.webhook_secret(other_team)
    body = raw(workflow_run())
    status, _ = await post_github(harness, team, theirs, body, "workflow_run", "d-x")
    assert status == 401


async def test_a_team_without_a_secret_answers_as_a_bad_signature(
    harness: Harness, team: str
) -> None:
    status, answer = await post_github(
        harness, team, "whsec_guess", raw(workflow_run()), "workflow_run", "d-1"
    )
    assert status == 401
    assert answer["title"] == "Bad webhook signature"


async def test_a_rotated_secret_stops_the_old_one(harness: Harness, team: str) -> None:
    old = await harness.webhook_secret(team)
    new = await harness.webhook_secret(team)
    body = raw(workflow_run())
    assert (await post_github(harness, team, old, body, "workflow_run", "d-old"))[0] == 401
    assert (await post_github(harness, team, new, body, "workflow_run", "d-new"))[0] == 202


async def test_a_published_release_registers_its_model_asset(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    status, _ = await post_github(harness, team, secret, raw(release()), "release", "d-rel")
    assert status == 202
    [event] = await harness.outbox()
    data = event.data
    assert isinstance(data, CiRunCompleted)
    assert data.model == "fraud"
    assert data.artifact is not None
    assert data.artifact.framework.value == "onnx"
    assert data.artifact.size_bytes == 2048


async def test_a_release_without_a_commit_sha_is_refused_with_what_to_change(
    harness: Harness, team: str
) -> None:
    secret = await harness.webhook_secret(team)
    status, answer = await post_github(
        harness, team, secret, raw(release(target="main")), "release", "d-rel2"
    )
    assert status == 422
    assert "--target" in str(answer["detail"])
    assert await harness.outbox() == []


async def test_the_custom_payload_is_accepted_at_the_github_door(
    harness: Harness, team: str
) -> None:
    secret = await harness.webhook_secret(team)
    status, _ = await post_github(harness, team, secret, raw(custom_run()), "mlplane.run", "c-1")
    assert status == 202
    [event] = await harness.outbox()
    assert isinstance(event.data, CiRunCompleted)
    assert event.data.artifact is not None


async def test_an_invalid_custom_payload_names_the_fields(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(custom_run(conclusion="maybe", team="someone-else"))
    status, answer = await post_github(harness, team, secret, body, "mlplane.run", "c-2")
    assert status == 422
    fields = {error["field"] for error in answer["errors"]}  # type: ignore[attr-defined]
    assert {"conclusion", "team"} <= fields


async def test_unrelated_events_are_ignored(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    ping = await post_github(harness, team, secret, b'{"zen": "hi"}', "ping", "p-1")
    other = await post_github(
        harness,
        team,
        secret,
        raw(workflow_run(path=".github/workflows/lint.yml")),
        "workflow_run",
        "w-lint",
    )
    running = await post_github(
        harness,
        team,
        secret,
        raw(workflow_run(status="in_progress", action="in_progress", conclusion=None)),
        "workflow_run",
        "w-running",
    )
    for status, answer in (ping, other, running):
        assert status == 200
        assert answer["status"] == "ignored"
    assert await harness.outbox() == []


async def test_the_model_can_come_from_the_webhook_url(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(workflow_run(path=".github/workflows/train.yml"))
    status, _ = await post_github(harness, team, secret, body, "workflow_run", "d-q", model="churn")
    assert status == 202
    [event] = await harness.outbox()
    assert isinstance(event.data, CiRunCompleted)
    assert event.data.model == "churn"


async def test_a_delivery_without_an_id_is_malformed(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(workflow_run())
    headers = github_headers(secret, body, "workflow_run", "x")
    del headers["X-GitHub-Delivery"]
    response = await harness.client.post(
        f"/v1/webhooks/github/{team}", content=body, headers=headers
    )
    assert response.status_code == 400


async def test_a_body_that_is_not_json_is_refused(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    status, _ = await post_github(harness, team, secret, b"\x00not json", "workflow_run", "d-bad")
    assert status == 422


async def test_an_oversized_body_is_refused(harness_for: object, team: str) -> None:
    harness: Harness = await harness_for(max_body_bytes=1024)  # type: ignore[operator]
    secret = await harness.webhook_secret(team)
    body = raw({**workflow_run(), "padding": "x" * 2000})
    status, _ = await post_github(harness, team, secret, body, "workflow_run", "d-big")
    assert status == 413


# -- GitLab ---------------------------------------------------------------------------


async def post_gitlab(
    harness: Harness,
    team: str,
    token: str,
    body: bytes,
    delivery: str,
    event: str = "Pipeline Hook",
) -> tuple[int, dict[str, object]]:
    response = await harness.client.post(
        f"/v1/webhooks/gitlab/{team}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": token,
            "Idempotency-Key": delivery,
            "X-Gitlab-Event-UUID": str(uuid4()),
        },
    )
    return response.status_code, response.json()


async def test_a_finished_gitlab_pipeline_becomes_one_ci_run_event(
    harness: Harness, team: str
) -> None:
    secret = await harness.webhook_secret(team)
    body = raw(gitlab_pipeline())
    first = await post_gitlab(harness, team, secret, body, "g-1")
    # A retry by GitLab: a new event UUID, the same Idempotency-Key.
    again = await post_gitlab(harness, team, secret, body, "g-1")
    assert first[0] == 202
    assert again[0] == 200
    assert again[1]["status"] == "duplicate"
    [event] = await harness.outbox()
    data = event.data
    assert isinstance(data, CiRunCompleted)
    assert (data.model, data.provider.value, data.run_id) == ("churn", "gitlab_ci", "31")
    assert data.artifact is not None
    assert data.artifact.uri == "s3://models/churn/31/model.pkl"
    assert data.completed_at.isoformat() == "2026-11-30T12:00:00+00:00"


async def test_a_wrong_gitlab_token_is_refused(harness: Harness, team: str) -> None:
    await harness.webhook_secret(team)
    status, _ = await post_gitlab(harness, team, "whsec_wrong", raw(gitlab_pipeline()), "g-2")
    assert status == 401
    assert await harness.outbox() == []


async def test_a_running_gitlab_pipeline_is_ignored(harness: Harness, team: str) -> None:
    secret = await harness.webhook_secret(team)
    status, answer = await post_gitlab(
        harness, team, secret, raw(gitlab_pipeline(status="running")), "g-3"
    )
    assert (status, answer["status"]) == (200, "ignored")


async def test_the_custom_payload_is_accepted_at_the_gitlab_door(
    harness: Harness, team: str
) -> None:
    secret = await harness.webhook_secret(team)
    status, _ = await post_gitlab(harness, team, secret, raw(custom_run()), "g-4", "mlplane.run")
    assert status == 202
    [event] = await harness.outbox()
    assert isinstance(event.data, CiRunCompleted)
    assert event.data.provider.value == "gitlab_ci"
