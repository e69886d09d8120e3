"""A version's artifact stays in its team's space, whichever way it is registered.

Over the HTTP API and from CI events against the real PostgreSQL: a host path,
another bucket, a `..` trick or another team's location is refused before anything
is read, and the refusal says nothing about the object behind the URI.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_registry.store import RegistryTables
from mlplane_runtime.bus.base import PoisonMessage
from mlplane_runtime.db import Database
from mlplane_testing.delivery import Deliver
from sqlalchemy import text

SHA = "ab" * 32
LINEAGE = {
    "git_repository": "https://git.example.com/ml/fraud",
    "commit_sha": "c" * 40,
    "ci_run_url": "https://ci.example.com/runs/1",
}


def version_body(uri: str, size_bytes: int = 1234, sha256: str = SHA) -> dict[str, Any]:
    return {
        "framework": "sklearn",
        "artifact": {"uri": uri, "size_bytes": size_bytes, "sha256": sha256},
        "lineage": LINEAGE,
    }


async def register(client: httpx.AsyncClient, team: str, uri: str, **kw: Any) -> httpx.Response:
    head = {"X-Mlplane-Team": team}
    await client.post("/models", json={"name": "fraud"}, headers=head)
    return await client.post("/models/fraud/versions", json=version_body(uri, **kw), headers=head)


def assert_refused(response: httpx.Response, *, by_schema: bool = False) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    if not by_schema:
        assert problem["type"].endswith("/artifact-refused")
    return problem


class TestRegisteringOverHttp:
    @pytest.mark.parametrize(
        "uri",
        [
            "file:///etc/passwd",
            "/etc/passwd",
            "file://localhost/var/lib/postgresql/data/PG_VERSION",
            "s3://other-bucket/fraud/model.pkl",
            "s3://models/../other-team/model.pkl",
            "s3://models/fraud/../../x/model.pkl",
            "s3://models/fraud/%2e%2e/model.pkl",
            "s3://models/",
            "https://example.com/model.pkl",
        ],
    )
    async def test_an_artifact_outside_the_teams_space_is_refused(
        self, client: httpx.AsyncClient, team: str, uri: str
    ) -> None:
        # A plain path is not even a URI: the request's schema refuses it first.
        assert_refused(await register(client, team, uri), by_schema=uri.startswith("/"))

    async def test_a_host_file_is_refused_alike_whether_it_exists_or_not(
        self, client: httpx.AsyncClient, team: str, tmp_path: Path
    ) -> None:
        secret = tmp_path / "artifacts" / ".signing-key"
        secret.parent.mkdir()
        secret.write_text("00" * 32)
        nothing = tmp_path / "artifacts" / ".nothing"

        there = assert_refused(await register(client, team, secret.as_uri()))
        missing = assert_refused(await register(client, team, nothing.as_uri()))

        assert hashlib.sha256(secret.read_bytes()).hexdigest() not in there["detail"]
        assert there["detail"].replace(secret.as_uri(), "<uri>") == missing["detail"].replace(
            nothing.as_uri(), "<uri>"
        )

    async def test_another_teams_location_is_refused(
        self, client: httpx.AsyncClient, team: str
    ) -> None:
        # `team` may use s3://models/ (the tests' configuration); its neighbour may not.
        assert (await register(client, team, "s3://models/fraud/1/model.pkl")).status_code == 201
        assert_refused(await register(client, f"{team}-other", "s3://models/fraud/1/model.pkl"))


def ci_run(team: str, uri: str) -> CloudEvent:
    return new_event(
        ev.CiRunCompleted(
            team=team,
            model="fraud",
            provider=ev.CiProvider.GITHUB_ACTIONS,
            run_id="7",
            conclusion=ev.CiConclusion.SUCCEEDED,
            completed_at="2026-12-01T00:00:00Z",
            artifact=ev.ModelArtifact(
                uri=uri, sha256=SHA, size_bytes=2048, framework=ev.ModelFramework.ONNX
            ),
            lineage=ev.Lineage(**LINEAGE),
        ),
        source="/mlplane/gateway",
        subject=f"models/{team}/fraud/runs/7",
    )


class TestRegisteringFromCi:
    async def test_a_ci_run_with_a_host_file_is_dead_lettered_with_its_reason(
        self,
        deliver: Deliver,
        team: str,
        tables: RegistryTables,
        registry_database: Database,
    ) -> None:
        with pytest.raises(PoisonMessage, match="not in team"):
            await deliver(ci_run(team, "file:///var/lib/mlplane/registry/artifacts/.signing-key"))

        async with registry_database.engine.connect() as connection:
            versions = await connection.scalar(
                text(f'SELECT count(*) FROM "{tables.metadata.schema}".model_versions')
            )
        assert versions == 0

    async def test_a_ci_run_under_the_teams_location_registers_a_version(
        self, deliver: Deliver, team: str, client: httpx.AsyncClient
    ) -> None:
        await deliver(ci_run(team, "s3://models/fraud/ci/7/model.onnx"))

        found = await client.get("/models/fraud/versions/1", headers={"X-Mlplane-Team": team})
        assert found.status_code == 200, found.text
