"""The real `mlflow.MlflowClient` against the registry served for real.

The platform hosts the registry plug-in on the real PostgreSQL (throwaway schemas)
and serves HTTP with uvicorn on a free 127.0.0.1 port; the MLflow client (which is
synchronous, so it runs in a worker thread) points its tracking and registry URIs
at `http://127.0.0.1:<port>/<name>`. The default team of MLflow requests is unique
to the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException, RestException
from mlplane_registry.main import make_plugin
from mlplane_runtime.db import Database
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_runtime.platform.http_server import bind_http_socket, serve_platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import TEST_PRINCIPAL, GatewayIdentity, signed_identity

START_S = 60.0
T = TypeVar("T")
SHA = "5" * 64
COMMIT = "c" * 40


@dataclass
class Served:
    url: str
    team: str
    name: str

    def http(self) -> httpx.AsyncClient:
        """A client of the MLflow API that signs as the gateway does."""
        return httpx.AsyncClient(
            base_url=f"{self.url}/api/2.0/mlflow", auth=GatewayIdentity(self.name)
        )

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture
async def served(
    database_url: str,
    registry_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Served]:
    name = f"rg{uuid4().hex[:10]}"
    schema = f"t_{uuid4().hex[:10]}"
    bus_schema = f"t_{uuid4().hex[:10]}"
    team = f"team-{uuid4().hex[:8]}"
    monkeypatch.setenv("MLPLANE_REGISTRY_MLFLOW_DEFAULT_TEAM", team)
    monkeypatch.setenv(
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS", json.dumps({team: ["s3://models/"]})
    )
    # No retries of failed requests: an error must reach the test at once.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # The registry answers only the gateway's signed identity: the MLflow client's
    # requests carry one as the gateway would add it (the operator's: no team).
    send = requests.Session.request

    def signed(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault(IDENTITY_HEADER, signed_identity(name, team=None))
        return send(self, method, url, headers=headers, **kwargs)

    monkeypatch.setattr(requests.Session, "request", signed)
    settings = RuntimeSettings(database_url=database_url, amqp_url=None, data_dir=tmp_path)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve_platform(
            settings,
            [make_plugin(name, schema)],
            name="mlflow-test",
            listen=bind_http_socket("127.0.0.1", 0),
            on_ready=lambda url: ready.set_result(url),
            until=stop,
            bus_schema=bus_schema,
        )
    )
    try:
        done, _ = await asyncio.wait(
            {server, ready}, timeout=START_S, return_when="FIRST_COMPLETED"
        )
        if ready not in done:
            server.result() if server.done() else None  # raises what stopped it
            raise AssertionError(f"the platform did not serve within {START_S:g} s")
        yield Served(f"{ready.result()}/{name}", team, name)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server, timeout=30)
        await registry_database.drop_schema(schema)
        await registry_database.drop_schema(bus_schema)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A call of the synchronous MLflow client, off the event loop the server runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def artifact_tags(n: int) -> dict[str, str]:
    """What mlplane needs of a version and MLflow does not carry, as version tags."""
    return {
        "mlplane.sha256": SHA,
        "mlplane.size_bytes": str(1000 + n),
        "mlplane.framework": "sklearn",
        "mlplane.git_repository": "https://git.example.com/ml/fraud",
        "mlplane.commit_sha": COMMIT,
    }


@pytest.mark.filterwarnings("ignore:.*get_latest_versions.*:FutureWarning")  # MLflow's own
async def test_the_mlflow_client_works_the_registry(served: Served) -> None:
    client = served.client()
    created: RegisteredModel = await call(
        client.create_registered_model, "fraud", tags={"owner": "risk"}, description="first cut"
    )
    assert created.name == "fraud"
    assert created.description == "first cut"
    assert created.tags == {"owner": "risk"}

    versions: list[ModelVersion] = []
    for n in (1, 2):
        versions.append(
            await call(
                client.create_model_version,
                "fraud",
                source=f"s3://models/fraud/{n}/model.pkl",
                run_id=f"run-{n}",
                run_link=f"https://ci.example.com/runs/{n}",
                tags={**artifact_tags(n), "dataset": f"d{n}"},
                description=f"version {n}",
            )
        )
    assert [v.version for v in versions] == ["1", "2"]  # MLflow's versions are strings
    second = versions[1]
    assert second.source == "s3://models/fraud/2/model.pkl"
    assert second.run_id == "run-2"
    assert second.run_link == "https://ci.example.com/runs/2"
    assert second.description == "version 2"
    assert second.status == "READY"
    assert second.tags == {"dataset": "d2"}  # mlplane's input tags went to artifact, lineage
    assert second.user_id == TEST_PRINCIPAL  # the principal the identity token names

    # Aliases: set, read back, seen on the model and the version.
    await call(client.set_registered_model_alias, "fraud", "champion", "1")
    await call(client.set_registered_model_alias, "fraud", "challenger", 2)
    champion: ModelVersion = await call(client.get_model_version_by_alias, "fraud", "champion")
    assert (champion.version, champion.source) == ("1", "s3://models/fraud/1/model.pkl")
    assert champion.aliases == ["champion"]
    model: RegisteredModel = await call(client.get_registered_model, "fraud")
    assert model.aliases == {"champion": "1", "challenger": "2"}
    assert [v.version for v in model.latest_versions] == ["2"]
    await call(client.set_registered_model_alias, "fraud", "champion", "2")
    moved: ModelVersion = await call(client.get_model_version_by_alias, "fraud", "champion")
    assert moved.version == "2"
    await call(client.delete_registered_model_alias, "fraud", "challenger")
    model = await call(client.get_registered_model, "fraud")
    assert model.aliases == {"champion": "2"}

    # Search: models by name and prefix, versions by model, run id and tag.
    await call(client.create_registered_model, "fraud-shadow")
    found = await call(client.search_registered_models, "name LIKE 'fraud%'")
    assert [m.name for m in found] == ["fraud", "fraud-shadow"]
    found = await call(client.search_registered_models, "name = 'fraud'")
    assert [m.name for m in found] == ["fraud"]
    assert [m.name for m in await call(client.search_registered_models)] == [
        "fraud",
        "fraud-shadow",
    ]
    page = await call(client.search_registered_models, max_results=1)
    assert [m.name for m in page] == ["fraud"]
    assert page.token is not None
    rest = await call(client.search_registered_models, max_results=1, page_token=page.token)
    assert [m.name for m in rest] == ["fraud-shadow"]
    assert not rest.token  # the client reads a missing token as ""
    hits = await call(client.search_model_versions, "name = 'fraud'")
    assert sorted(v.version for v in hits) == ["1", "2"]
    hits = await call(client.search_model_versions, "name='fraud' AND run_id='run-1'")
    assert [v.version for v in hits] == ["1"]
    hits = await call(client.search_model_versions, "tags.dataset = 'd2'")
    assert [(v.name, v.version) for v in hits] == [("fraud", "2")]
    latest = await call(client.get_latest_versions, "fraud")
    assert [v.version for v in latest] == ["2"]
    assert await call(client.get_latest_versions, "fraud", stages=["Production"]) == []

    # Descriptions and tags.
    await call(client.update_registered_model, "fraud", description="second cut")
    await call(client.set_registered_model_tag, "fraud", "tier", "gold")
    await call(client.delete_registered_model_tag, "fraud", "owner")
    model = await call(client.get_registered_model, "fraud")
    assert (model.description, model.tags) == ("second cut", {"tier": "gold"})
    updated: ModelVersion = await call(
        client.update_model_version, "fraud", "1", description="the baseline"
    )
    assert updated.description == "the baseline"
    await call(client.set_model_version_tag, "fraud", "1", "reviewed", "yes")
    await call(client.delete_model_version_tag, "fraud", "1", "dataset")
    first: ModelVersion = await call(client.get_model_version, "fraud", "1")
    assert first.description == "the baseline"
    assert first.tags == {"reviewed": "yes"}
    assert first.run_id == "run-1"  # kept through the tag changes

    # The download URI is the artifact's URI.
    uri = await call(client.get_model_version_download_uri, "fraud", "2")
    assert uri == "s3://models/fraud/2/model.pkl"

    # Deletes.
    await call(client.delete_model_version, "fraud", "1")
    with pytest.raises(RestException) as gone:
        await call(client.get_model_version, "fraud", "1")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    await call(client.delete_registered_model, "fraud")
    names = [m.name for m in await call(client.search_registered_models)]
    assert names == ["fraud-shadow"]


async def test_errors_reach_the_client_in_mlflows_shape(served: Served) -> None:
    client = served.client()
    with pytest.raises(RestException) as missing:
        await call(client.get_registered_model, "no-such-model")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "no-such-model" in missing.value.message

    with pytest.raises(MlflowException) as bad_name:
        await call(client.create_registered_model, "Fraud Model")
    assert bad_name.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "DNS-1123" in bad_name.value.message
    assert "'fraud-model'" in bad_name.value.message

    await call(client.create_registered_model, "fraud")
    with pytest.raises(RestException) as twice:
        await call(client.create_registered_model, "fraud")
    assert twice.value.error_code == "RESOURCE_ALREADY_EXISTS"

    # A runs:/ source needs a tracking server: the version fails registration, saying so
    # (the client waits for it to leave PENDING_REGISTRATION).
    with pytest.raises(MlflowException) as no_tracking:
        await call(client.create_model_version, "fraud", source="runs:/abc/model")
    assert "FAILED_REGISTRATION" in no_tracking.value.message
    assert "MLPLANE_REGISTRY_MLFLOW_TRACKING_URI" in no_tracking.value.message
    with pytest.raises(RestException) as bad_source:
        await call(client.create_model_version, "fraud", source="/local/path/model")
    assert bad_source.value.error_code == "INVALID_PARAMETER_VALUE"

    with pytest.raises(RestException) as no_version:
        await call(client.set_registered_model_alias, "fraud", "champion", "9")
    assert no_version.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    await call(client.create_registered_model, "fraud-2")
    with pytest.raises(RestException) as renamed:
        await call(client.rename_registered_model, "fraud", "fraud-2")
    assert renamed.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(RestException) as staged:
        await call(client.transition_model_version_stage, "fraud", "1", "Production")
    assert staged.value.error_code == "NOT_IMPLEMENTED"


async def test_the_team_comes_from_the_header_else_the_default(served: Served) -> None:
    other = f"team-{uuid4().hex[:8]}"
    async with served.http() as http:
        answer = await http.post(
            "/registered-models/create",
            json={"name": "fraud"},
            headers={"X-Mlplane-Team": other},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["registered_model"]["name"] == "fraud"
        # The default team (the MLflow client's) does not see the other team's model.
        missing = await http.get("/registered-models/get", params={"name": "fraud"})
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        seen = await http.get(
            "/registered-models/get", params={"name": "fraud"}, headers={"X-Mlplane-Team": other}
        )
        assert seen.status_code == 200
        bad = await http.get(
            "/registered-models/get", params={"name": "x"}, headers={"X-Mlplane-Team": "Not A Team"}
        )
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        # The UI's prefix and unknown endpoints, as MLflow's server answers them.
        ajax = await http.get(
            f"{served.url}/ajax-api/2.0/mlflow/registered-models/search",
            headers={"X-Mlplane-Team": other},
        )
        assert [m["name"] for m in ajax.json()["registered_models"]] == ["fraud"]
        unknown = await http.post("/runs/create", json={})
        assert unknown.status_code == 404
        assert unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"


async def test_mlflow_tags_past_mlflows_limits_are_refused(served: Served) -> None:
    name = f"limits-{uuid4().hex[:8]}"
    async with served.http() as http:
        created = await http.post("/registered-models/create", json={"name": name})
        assert created.status_code == 200, created.text
        too_long = await http.post(
            "/registered-models/set-tag", json={"name": name, "key": "k", "value": "x" * 5001}
        )
        assert too_long.status_code in (400, 422), too_long.text
        for i in range(100):
            tagged = await http.post(
                "/registered-models/set-tag", json={"name": name, "key": f"k{i}", "value": "v"}
            )
            assert tagged.status_code == 200, tagged.text
        one_more = await http.post(
            "/registered-models/set-tag", json={"name": name, "key": "k100", "value": "v"}
        )
        assert one_more.status_code == 400, one_more.text
        assert one_more.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        nul = await http.patch(
            "/registered-models/update", json={"name": name, "description": "a\u0000b"}
        )
        assert nul.status_code in (400, 422), nul.text
        head = await http.head("/registered-models/get", params={"name": name})
        assert head.status_code == 200
        assert head.content == b""


async def test_search_grammar_order_pages_and_rename_through_the_client(served: Served) -> None:
    client = served.client()
    for name in ("churn", "fraud", "fraud-shadow"):
        await call(client.create_registered_model, name, tags={"tier": name[:5]})
    for n in (1, 2, 3):
        await call(
            client.create_model_version,
            "fraud",
            source=f"s3://models/fraud/{n}/model.pkl",
            run_id=f"run-{n}",
            tags={**artifact_tags(n), "stage": "odd" if n % 2 else "even"},
        )
    await call(client.set_registered_model_alias, "fraud", "champion", "2")

    def names(found: Any) -> list[str]:
        return [m.name for m in found]

    def numbers(found: Any) -> list[str]:
        return [v.version for v in found]

    assert names(await call(client.search_registered_models, "name != 'fraud'")) == [
        "churn",
        "fraud-shadow",
    ]
    assert names(await call(client.search_registered_models, "name ILIKE 'FRAUD%'")) == [
        "fraud",
        "fraud-shadow",
    ]
    assert names(await call(client.search_registered_models, "tags.tier = 'fraud'")) == [
        "fraud",
        "fraud-shadow",
    ]
    assert names(
        await call(client.search_registered_models, order_by=["name DESC"], max_results=2)
    ) == ["fraud-shadow", "fraud"]
    found = await call(
        client.search_model_versions, "run_id IN ('run-1', 'run-3')", order_by=["version_number"]
    )
    assert numbers(found) == ["1", "3"]
    found = await call(client.search_model_versions, "name = 'fraud' AND tags.stage != 'odd'")
    assert numbers(found) == ["2"]
    found = await call(
        client.search_model_versions, "source_path LIKE '%/3/%' AND version_number > 1"
    )
    assert numbers(found) == ["3"]
    page = await call(
        client.search_model_versions,
        "name = 'fraud'",
        max_results=2,
        order_by=["creation_timestamp ASC"],
    )
    assert numbers(page) == ["1", "2"]
    rest = await call(
        client.search_model_versions,
        "name = 'fraud'",
        max_results=2,
        order_by=["creation_timestamp ASC"],
        page_token=page.token,
    )
    assert numbers(rest) == ["3"]
    with pytest.raises(RestException) as bad:
        await call(client.search_model_versions, "name = 'fraud' OR name = 'churn'")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(RestException) as bad_order:
        await call(client.search_model_versions, order_by=["tags.stage"])
    assert bad_order.value.error_code == "INVALID_PARAMETER_VALUE"

    await call(client.rename_registered_model, "fraud", "fraud-v2")
    model: RegisteredModel = await call(client.get_registered_model, "fraud-v2")
    assert model.aliases == {"champion": "2"}
    assert numbers(model.latest_versions) == ["3"]
    champion: ModelVersion = await call(client.get_model_version_by_alias, "fraud-v2", "champion")
    assert (champion.name, champion.run_id) == ("fraud-v2", "run-2")
    with pytest.raises(RestException) as gone:
        await call(client.get_model_version, "fraud", "1")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    copied: ModelVersion = await call(client.copy_model_version, "models:/fraud-v2/1", "churn")
    assert (copied.name, copied.version, copied.status) == ("churn", "1", "READY")
