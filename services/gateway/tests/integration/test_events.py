"""CloudEvents over HTTP (`POST /v1/events`): binary, structured and batch modes, once each."""

from __future__ import annotations

import json
from typing import Any

from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_contracts.events import CiRunCompleted, ModelAliasChanged
from mlplane_contracts.http import HttpMessage, encode_batch, encode_binary, encode_structured

from ..conftest import Harness
from ..payloads import custom_run

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def ci_event(team: str, run_id: str = "r-1", **attributes: Any) -> CloudEvent:
    data = CiRunCompleted.model_validate(
        {**custom_run(run_id=run_id), "team": team, "provider": "other"}
    )
    return new_event(data, source="https://ci.example.com/acme", **attributes)


async def post(harness: Harness, token: str, message: HttpMessage) -> Any:
    return await harness.client.post(
        "/v1/events", content=message.body, headers={**message.headers, **harness.bearer(token)}
    )


async def test_binary_mode_is_published_once(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    posted = ci_event(team, traceparent=TRACEPARENT)
    first = await post(harness, token, encode_binary(posted))
    again = await post(harness, token, encode_binary(posted))
    assert first.status_code == 202, first.text
    [answer] = first.json()["events"]
    assert (answer["id"], answer["status"]) == (posted.id, "accepted")
    assert again.json()["events"][0]["status"] == "duplicate"
    assert again.json()["events"][0]["event_id"] == answer["event_id"]

    [event] = await harness.outbox()
    assert event.id == answer["event_id"]
    assert event.source == "/mlplane/gateway"
    assert event.data == posted.data
    # The producer's trace continues: same trace id, the posted span as parent.
    assert event.traceparent is not None
    assert event.traceparent.split("-")[1] == TRACEPARENT.split("-")[1]


async def test_structured_mode_is_published(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    response = await post(harness, token, encode_structured(ci_event(team)))
    assert response.status_code == 202, response.text
    assert len(await harness.outbox()) == 1


async def test_a_batch_is_published_in_order_and_repeats_inside_it_count_once(
    harness: Harness, team: str
) -> None:
    token = await harness.key_token(team, "events:publish")
    one, two = ci_event(team, "r-1"), ci_event(team, "r-2")
    response = await post(harness, token, encode_batch([one, two, one]))
    assert response.status_code == 202, response.text
    statuses = [e["status"] for e in response.json()["events"]]
    assert statuses == ["accepted", "accepted", "duplicate"]
    runs = [e.data.run_id for e in await harness.outbox() if isinstance(e.data, CiRunCompleted)]
    assert runs == ["r-1", "r-2"]


async def test_the_same_id_from_another_source_is_another_event(
    harness: Harness, team: str
) -> None:
    token = await harness.key_token(team, "events:publish")
    first = ci_event(team)
    second = first.model_copy(update={"source": "https://ci.example.com/other"})
    await post(harness, token, encode_binary(first))
    response = await post(harness, token, encode_binary(second))
    assert response.json()["events"][0]["status"] == "accepted"
    assert len(await harness.outbox()) == 2


async def test_another_teams_event_is_refused_and_nothing_is_published(
    harness: Harness, team: str, other_team: str
) -> None:
    token = await harness.key_token(team, "events:publish")
    response = await post(
        harness, token, encode_batch([ci_event(team, "mine"), ci_event(other_team, "theirs")])
    )
    assert response.status_code == 403
    assert await harness.outbox() == []


async def test_a_type_outsiders_may_not_publish_is_refused(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    forged = new_event(
        ModelAliasChanged.model_validate(
            {
                "team": team,
                "model": "fraud",
                "alias": "champion",
                "version": 3,
                "changed_by": "user:mallory",
                "changed_at": "2026-11-30T10:00:00Z",
            }
        ),
        source="https://evil.example.com",
    )
    response = await post(harness, token, encode_binary(forged))
    assert response.status_code == 422
    assert "cannot be published" in response.json()["detail"]
    assert await harness.outbox() == []


async def test_malformed_events_are_problems(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    auth = harness.bearer(token)
    valid = encode_binary(ci_event(team))
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"content-type": "application/cloudevents+json"}, b"{not json"),
        ({"content-type": "application/cloudevents-batch+json"}, b'{"an": "object"}'),
        ({"content-type": "application/json"}, b"{}"),  # binary mode without ce- headers
        ({**valid.headers, "ce-type": "io.example.unknown.v1"}, valid.body),
        (valid.headers, json.dumps({"team": team}).encode()),  # data fails its model
        ({**valid.headers, "ce-specversion": "0.3"}, valid.body),
    ]
    for headers, body in cases:
        response = await harness.client.post(
            "/v1/events", content=body, headers={**headers, **auth}
        )
        assert response.status_code == 400, (headers, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await harness.outbox() == []


async def test_an_id_with_a_nul_character_is_refused(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    message = encode_structured(ci_event(team).model_copy(update={"id": "a\u0000b"}))
    response = await post(harness, token, message)
    assert response.status_code == 422
    assert await harness.outbox() == []


async def test_nul_in_the_event_data_is_refused_before_it_is_accepted(
    harness: Harness, team: str
) -> None:
    token = await harness.key_token(team, "events:publish")
    message = encode_binary(ci_event(team))
    body = json.loads(message.body)
    body["run_id"] = "r\u00001"
    response = await post(harness, token, HttpMessage(message.headers, json.dumps(body).encode()))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "event.data.run_id"
    assert await harness.outbox() == []


async def test_nul_in_the_subject_is_refused(harness: Harness, team: str) -> None:
    token = await harness.key_token(team, "events:publish")
    message = encode_structured(ci_event(team, subject="runs/a\u0000b"))
    response = await post(harness, token, message)
    assert response.status_code == 422, response.text
    assert await harness.outbox() == []
