"""The registry's HTTP API against the real PostgreSQL: models, versions, aliases, search."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from mlplane_contracts.amqp import decode
from mlplane_registry.store import RegistryTables
from mlplane_runtime.db import Database
from sqlalchemy import text

SHA = "ab" * 32
COMMIT = "c" * 40


def headers(team: str, **extra: str) -> dict[str, str]:
    return {"X-Mlplane-Team": team, **extra}


def version_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "framework": "sklearn",
        "artifact": {"uri": "s3://models/fraud/model.pkl", "size_bytes": 1234, "sha256": SHA},
        "lineage": {
            "git_repository": "https://git.example.com/ml/fraud",
            "commit_sha": COMMIT,
            "ci_run_url": "https://ci.example.com/runs/1",
            "datasets": [
                {"name": "train", "uri": "s3://data/train", "digest": "sha256:" + "d" * 64}
            ],
            "params": {"lr": "0.1"},
            "metrics": {"auc": 0.93},
        },
        "signature": {"inputs": [{"name": "amount", "type": "double"}]},
        "tags": {"owner": "risk"},
    }
    body.update(overrides)
    return body


async def create_model(client: httpx.AsyncClient, team: str, name: str) -> None:
    response = await client.post("/models", json={"name": name}, headers=headers(team))
    assert response.status_code == 201, response.text


async def create_version(
    client: httpx.AsyncClient, team: str, name: str, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/models/{name}/versions", json=version_body(**overrides), headers=headers(team)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def outbox_types(database: Database, tables: RegistryTables) -> list[str]:
    async with database.sessions() as session:
        rows = await session.execute(
            text(f'SELECT type FROM "{tables.metadata.schema}".outbox ORDER BY position')
        )
        return [row[0] for row in rows]


async def outbox_events(database: Database, tables: RegistryTables) -> list[dict[str, Any]]:
    """The outbox rows as CloudEvents (decoded as a consumer would)."""
    async with database.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT headers, body, content_type"
                f' FROM "{tables.metadata.schema}".outbox ORDER BY position'
            )
        )
        return [
            decode(headers_, bytes(body), content_type).model_dump(mode="json")
            for headers_, body, content_type in rows
        ]


class TestModels:
    async def test_a_model_is_created_read_updated_and_deleted(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        created = await client.post(
            "/models",
            json={"name": "fraud", "description": "card fraud", "tags": {"domain": "risk"}},
            headers=headers(team),
        )
        assert created.status_code == 201
        got = await client.get("/models/fraud", headers=headers(team))
        assert got.json()["description"] == "card fraud"
        etag = got.headers["etag"]
        updated = await client.patch(
            "/models/fraud", json={"description": "v2"}, headers=headers(team, **{"If-Match": etag})
        )
        assert updated.status_code == 200
        assert updated.json()["tags"] == {"domain": "risk"}
        stale = await client.patch(
            "/models/fraud", json={"description": "v3"}, headers=headers(team, **{"If-Match": etag})
        )
        assert stale.status_code == 412
        assert (await client.delete("/models/fraud", headers=headers(team))).status_code == 204
        assert (await client.get("/models/fraud", headers=headers(team))).status_code == 404

    async def test_a_name_is_unique_per_team(self, client: httpx.AsyncClient, team: str) -> None:
        await create_model(client, team, "fraud")
        again = await client.post("/models", json={"name": "fraud"}, headers=headers(team))
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        await create_model(client, f"{team}-other", "fraud")

    async def test_an_invalid_name_is_a_422_naming_the_field(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        response = await client.post("/models", json={"name": "Fraud_1"}, headers=headers(team))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["body.name"]

    async def test_the_team_header_is_required(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/models/fraud")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "header.X-Mlplane-Team"


class TestVersions:
    async def test_registering_emits_the_event_and_numbers_are_never_reused(
        self,
        client: httpx.AsyncClient,
        team: str,
        registry_database: Database,
        tables: RegistryTables,
    ) -> None:
        await create_model(client, team, "fraud")
        first = await create_version(client, team, "fraud")
        assert first["version"] == 1
        assert first["lifecycle"]["stage"] == "registered"
        assert first["lineage"]["metrics"] == {"auc": 0.93}
        second = await create_version(client, team, "fraud")
        deleted = await client.delete(
            f"/models/fraud/versions/{second['version']}", headers=headers(team)
        )
        assert deleted.status_code == 204
        third = await create_version(client, team, "fraud")
        assert third["version"] == 3
        assert (
            await outbox_types(registry_database, tables)
            == ["io.mlplane.model.version.registered.v1"] * 3
        )
        registered = (await outbox_events(registry_database, tables))[0]
        assert registered["subject"] == f"models/{team}/fraud/versions/1"
        assert registered["data"]["artifact"] == {
            "uri": "s3://models/fraud/model.pkl",
            "sha256": SHA,
            "size_bytes": 1234,
            "framework": "sklearn",
            "media_type": None,
        }
        assert registered["data"]["lineage"]["commit_sha"] == COMMIT
        assert registered["data"]["lineage"]["metrics"] == {"auc": 0.93}

    async def test_concurrent_registrations_get_distinct_consecutive_numbers(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        await create_model(client, team, "fraud")
        created = await asyncio.gather(*(create_version(client, team, "fraud") for _ in range(8)))
        assert sorted(v["version"] for v in created) == list(range(1, 9))

    async def test_a_version_of_a_missing_model_is_not_found(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        response = await client.post(
            "/models/nothing/versions", json=version_body(), headers=headers(team)
        )
        assert response.status_code == 404

    async def test_a_bad_sha256_is_a_422_with_the_field_path(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        await create_model(client, team, "fraud")
        body = version_body(artifact={"uri": "s3://m/x", "size_bytes": 1, "sha256": "nope"})
        response = await client.post("/models/fraud/versions", json=body, headers=headers(team))
        assert response.status_code == 422
        assert "body.artifact.sha256" in [e["field"] for e in response.json()["errors"]]

    async def test_an_update_with_a_stale_etag_is_refused(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        await create_model(client, team, "fraud")
        await create_version(client, team, "fraud")
        etag = (await client.get("/models/fraud/versions/1", headers=headers(team))).headers["etag"]
        ok = await client.patch(
            "/models/fraud/versions/1",
            json={"status_message": "validated", "tags": {"stage": "qa"}},
            headers=headers(team, **{"If-Match": etag}),
        )
        assert ok.status_code == 200
        assert ok.json()["status_message"] == "validated"
        assert ok.headers["etag"] != etag
        late = await client.patch(
            "/models/fraud/versions/1",
            json={"status_message": "other"},
            headers=headers(team, **{"If-Match": etag}),
        )
        assert late.status_code == 412
        assert late.json()["current_etag"] == ok.headers["etag"]


class TestAliases:
    async def test_an_alias_is_set_read_moved_and_removed_with_events(
        self,
        client: httpx.AsyncClient,
        team: str,
        registry_database: Database,
        tables: RegistryTables,
    ) -> None:
        await create_model(client, team, "fraud")
        await create_version(client, team, "fraud")
        await create_version(client, team, "fraud")
        put = await client.put(
            "/models/fraud/aliases/champion", json={"version": 1}, headers=headers(team)
        )
        assert put.status_code == 200
        got = await client.get("/models/fraud/aliases/champion", headers=headers(team))
        assert got.json()["version"]["version"] == 1
        assert got.json()["version"]["aliases"] == ["champion"]
        assert got.headers["etag"] == put.headers["etag"]
        moved = await client.put(
            "/models/fraud/aliases/champion",
            json={"version": 2},
            headers=headers(team, **{"If-Match": got.headers["etag"]}),
        )
        assert moved.status_code == 200
        unchanged = await client.put(
            "/models/fraud/aliases/champion", json={"version": 2}, headers=headers(team)
        )
        assert unchanged.headers["etag"] == moved.headers["etag"]  # no change, no event
        removed = await client.delete(
            "/models/fraud/aliases/champion",
            headers=headers(team, **{"If-Match": moved.headers["etag"]}),
        )
        assert removed.status_code == 204
        missing = await client.get("/models/fraud/aliases/champion", headers=headers(team))
        assert missing.status_code == 404
        types = await outbox_types(registry_database, tables)
        assert types.count("io.mlplane.model.alias.changed.v1") == 3

    async def test_of_two_concurrent_writers_with_the_same_etag_one_gets_412(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        await create_model(client, team, "fraud")
        for _ in range(3):
            await create_version(client, team, "fraud")
        first = await client.put(
            "/models/fraud/aliases/champion", json={"version": 1}, headers=headers(team)
        )
        etag, current = first.headers["etag"], 1
        for _ in range(5):  # several rounds: the race must never let both win
            # Both move it (to the two other versions): neither write is a no-op.
            targets = [v for v in (1, 2, 3) if v != current]
            answers = await asyncio.gather(
                *(
                    client.put(
                        "/models/fraud/aliases/champion",
                        json={"version": version},
                        headers=headers(team, **{"If-Match": etag}),
                    )
                    for version in targets
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 412]
            winner = next(a for a in answers if a.status_code == 200)
            loser = next(a for a in answers if a.status_code == 412)
            assert loser.headers["content-type"] == "application/problem+json"
            latest = await client.get("/models/fraud/aliases/champion", headers=headers(team))
            assert latest.json()["version"]["version"] == winner.json()["version"]
            etag, current = latest.headers["etag"], latest.json()["version"]["version"]

    async def test_an_alias_name_must_be_a_dns_label_and_its_version_exist(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        await create_model(client, team, "fraud")
        await create_version(client, team, "fraud")
        bad = await client.put(
            "/models/fraud/aliases/Champion", json={"version": 1}, headers=headers(team)
        )
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["path.alias"]
        missing = await client.put(
            "/models/fraud/aliases/champion", json={"version": 9}, headers=headers(team)
        )
        assert missing.status_code == 404


class TestSearch:
    async def test_pages_are_stable_while_versions_are_added(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        for name in ("fraud", "fraud-eu", "churn"):
            await create_model(client, team, name)
        for i in range(8):
            for name in ("fraud", "fraud-eu", "churn"):
                await create_version(client, team, name, tags={"parity": str(i % 2)})
        seen: list[tuple[str, int]] = []
        cursor: str | None = None
        added = False
        while True:
            params: dict[str, Any] = {"name_prefix": "fraud", "limit": 5}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/versions", params=params, headers=headers(team))).json()
            seen += [(v["model"], v["version"]) for v in page["versions"]]
            if not added:  # a write between pages neither repeats nor skips anything
                await create_version(client, team, "fraud")
                added = True
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 17
        assert seen[-1] == ("fraud", 9)
        assert all(model.startswith("fraud") for model, _ in seen)
        exact = await client.get(
            "/versions", params={"model": "fraud-eu", "limit": 50}, headers=headers(team)
        )
        assert {v["model"] for v in exact.json()["versions"]} == {"fraud-eu"}
        assert len(exact.json()["versions"]) == 8

    async def test_filters_combine(self, client: httpx.AsyncClient, team: str) -> None:
        await create_model(client, team, "fraud")
        for i in range(4):
            await create_version(client, team, "fraud", tags={"parity": str(i % 2)})
        await client.put(
            "/models/fraud/aliases/champion", json={"version": 3}, headers=headers(team)
        )
        everything = (await client.get("/versions", headers=headers(team))).json()["versions"]
        middle = everything[1]["created_at"]

        async def versions(**params: Any) -> list[int]:
            response = await client.get("/versions", params=params, headers=headers(team))
            assert response.status_code == 200, response.text
            return [v["version"] for v in response.json()["versions"]]

        assert await versions(tag="parity=0") == [1, 3]
        assert await versions(alias="champion") == [3]
        assert await versions(tag="parity=0", alias="champion") == [3]
        assert await versions(stage="registered") == [1, 2, 3, 4]
        assert await versions(stage="deployed") == []
        assert await versions(created_after=middle) == [3, 4]
        assert await versions(created_before=middle) == [1]
        bad = await client.get("/versions", params={"tag": "novalue"}, headers=headers(team))
        assert bad.status_code == 422
        bad_cursor = await client.get("/versions", params={"cursor": "%%"}, headers=headers(team))
        assert bad_cursor.status_code == 422


class TestTeams:
    async def test_teams_cannot_see_each_others_models(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        other = f"{team}-b"
        await create_model(client, team, "fraud")
        await create_version(client, team, "fraud")
        await client.put(
            "/models/fraud/aliases/champion", json={"version": 1}, headers=headers(team)
        )
        assert (await client.get("/models/fraud", headers=headers(other))).status_code == 404
        assert (
            await client.get("/models/fraud/versions/1", headers=headers(other))
        ).status_code == 404
        assert (
            await client.get("/models/fraud/aliases/champion", headers=headers(other))
        ).status_code == 404
        put = await client.put(
            "/models/fraud/aliases/champion", json={"version": 1}, headers=headers(other)
        )
        assert put.status_code == 404
        assert (await client.delete("/models/fraud", headers=headers(other))).status_code == 404
        found = (await client.get("/versions", headers=headers(other))).json()
        assert found["versions"] == []
        listed = (await client.get("/models", headers=headers(other))).json()
        assert listed["models"] == []


# -- bad input and limits at the door ------------------------------------------------


async def test_nul_in_a_query_parameter_is_refused_with_422(
    client: httpx.AsyncClient, team: str
) -> None:
    response = await client.get("/versions?name_prefix=a%00b", headers=headers(team))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["query.name_prefix"]


async def test_nul_in_a_model_description_is_refused_with_422(
    client: httpx.AsyncClient, team: str
) -> None:
    response = await client.post(
        "/models", json={"name": "fraud", "description": "a\u0000b"}, headers=headers(team)
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body.description"]


async def test_line_breaks_in_a_model_description_are_kept(
    client: httpx.AsyncClient, team: str
) -> None:
    response = await client.post(
        "/models", json={"name": "fraud", "description": "a\n\tb\r\n"}, headers=headers(team)
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "a\n\tb\r\n"


async def test_nul_in_a_version_signature_or_tag_is_refused_with_422(
    client: httpx.AsyncClient, team: str
) -> None:
    await create_model(client, team, "fraud")
    for overrides, field in [
        ({"signature": {"inputs": "a\u0000"}}, "body.signature"),
        ({"tags": {"owner": "a\u0000"}}, "body.tags.owner"),
    ]:
        response = await client.post(
            "/models/fraud/versions", json=version_body(**overrides), headers=headers(team)
        )
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_more_than_100_tags_on_a_model_are_refused(
    client: httpx.AsyncClient, team: str
) -> None:
    tags = {f"k{i}": "v" for i in range(101)}
    response = await client.post(
        "/models", json={"name": "fraud", "tags": tags}, headers=headers(team)
    )
    assert response.status_code == 422, response.text
    hundred = {f"k{i}": "v" for i in range(100)}
    response = await client.post(
        "/models", json={"name": "fraud", "tags": hundred}, headers=headers(team)
    )
    assert response.status_code == 201, response.text


async def test_a_tag_value_past_5000_characters_is_refused(
    client: httpx.AsyncClient, team: str
) -> None:
    await create_model(client, team, "fraud")
    response = await client.post(
        "/models/fraud/versions",
        json=version_body(tags={"owner": "x" * 5001}),
        headers=headers(team),
    )
    assert response.status_code == 422, response.text


async def test_a_body_past_1_mib_is_refused_with_413(client: httpx.AsyncClient, team: str) -> None:
    response = await client.post(
        "/models",
        json={"name": "fraud", "tags": {f"k{i}": "v" * 5000 for i in range(300)}},
        headers=headers(team),
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_head_on_a_get_route_answers_like_the_get_without_body(
    client: httpx.AsyncClient, team: str
) -> None:
    await create_model(client, team, "fraud")
    got = await client.get("/models/fraud", headers=headers(team))
    head = await client.head("/models/fraud", headers=headers(team))
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
