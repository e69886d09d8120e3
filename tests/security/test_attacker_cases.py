"""The attacks the security issue names, each spelled out (the matrix covers them too,
among everything else): reading and replaying another team's dead letters with too
little scope, changing a scanner policy with forged headers on the platform's port, a
cross-site `text/plain` POST to the MLflow API, a rebuild with no credential."""

from __future__ import annotations

import httpx
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER

from .forgery import forged_headers
from .world import World


def _client(world: World) -> httpx.Client:
    return httpx.Client(base_url=world.stack.url, timeout=30)


def _bearer(world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[name]}"}


def test_a_read_key_cannot_read_another_teams_dead_letters_through_the_gateway(
    world: World,
) -> None:
    with _client(world) as client:
        answer = client.get("/v1/registry/dead-letters", headers=_bearer(world, "a_read"))
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert world.b.marker not in answer.text
        # Even team A's admin sees only team A's letters.
        answer = client.get("/v1/registry/dead-letters", headers=_bearer(world, "a_admin"))
        assert answer.status_code == 200, answer.text
        assert world.b.marker not in answer.text
        assert world.b.team not in answer.text
        assert world.a.dead_letters["registry"] in answer.text


def test_a_write_key_cannot_replay_dead_letters(world: World) -> None:
    letter = world.b.dead_letters["registry"]
    with _client(world) as client:
        for headers in (_bearer(world, "a_write"), _bearer(world, "a_read")):
            answer = client.post(
                "/v1/registry/dead-letters/replay", json={"ids": [letter]}, headers=headers
            )
            assert answer.status_code == 403, answer.text
        answer = client.post(
            "/v1/registry/dead-letters/replay",
            json={"ids": [letter]},
            headers=_bearer(world, "a_admin"),
        )
        assert answer.json() == {"replayed": 0}
    listed = world.as_team(world.b, "registry", "GET", "/dead-letters?limit=1000")
    assert letter in [x["id"] for x in listed["dead_letters"]]


def test_a_policy_put_with_forged_headers_on_the_platforms_port_is_refused(world: World) -> None:
    body = {"max_severity": "critical", "block_when_vulnerabilities_not_assessed": False}
    with _client(world) as client:
        answer = client.put(
            "/scanner/policies/prod", json=body, headers=forged_headers(world.b.team)
        )
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    policy = world.as_team(world.b, "scanner", "GET", "/policies/prod")
    assert policy["max_severity"] == "high"


def test_a_text_plain_mlflow_create_with_a_valid_identity_changes_nothing(world: World) -> None:
    name = "plain-text-model"
    headers = {**world.token("registry", world.a.team), "content-type": "text/plain"}
    with _client(world) as client:
        answer = client.post(
            "/registry/api/2.0/mlflow/registered-models/create",
            content=f'{{"name": "{name}"}}',
            headers=headers,
        )
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        found = client.get(
            f"/registry/models/{name}", headers=world.token("registry", world.a.team)
        )
    assert found.status_code == 404, found.text


def test_a_rebuild_without_credentials_is_refused(world: World) -> None:
    path = f"/builds/{world.b.build_id}/rebuild"
    with _client(world) as client:
        for url in (f"/builder{path}", f"/v1/builder{path}"):
            answer = client.post(url)
            assert answer.status_code == 401, (url, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        # A token for the registry is not one for the builder.
        registry = world.token("registry", world.b.team)[IDENTITY_HEADER]
        answer = client.post(f"/builder{path}", headers={IDENTITY_HEADER: registry})
        assert answer.status_code == 401, answer.text
    build = world.as_team(world.b, "builder", "GET", f"/builds/{world.b.build_id}")
    assert build["status"] in ("succeeded", "failed")
