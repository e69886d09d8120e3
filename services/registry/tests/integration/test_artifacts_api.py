"""Artifact uploads through the registry's HTTP API, end to end, on both stores.

The registry is hosted by the platform (real PostgreSQL, in-process bus); with
`MLPLANE_REGISTRY_S3_*` set it keeps artifacts on the real S3 server (SeaweedFS),
without them on the local disk, serving the signed URLs itself. CI's side is plain
httpx: start an upload, PUT each part to its presigned URL, complete it with the
ETags, register a version with the verified artifact, download it back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_registry.main import make_plugin
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.s3_server import S3Endpoint, delete_bucket, unique_bucket

MIB = 1024 * 1024
PART = 5 * MIB
LINEAGE = {
    "git_repository": "https://git.example.com/ml/fraud",
    "commit_sha": "c" * 40,
    "ci_run_url": "https://ci.example.com/runs/1",
}


async def host(
    database_url: str, registry_database: Database, data_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The registry hosted on a fresh schema; an ASGI client and its URL prefix."""
    name = f"rg{uuid4().hex[:10]}"
    schema, bus_schema = f"t_{uuid4().hex[:10]}", f"t_{uuid4().hex[:10]}"
    settings = RuntimeSettings(
        database_url=database_url, amqp_url=None, data_dir=data_dir, http_port=8080
    )
    platform = Platform(settings, [make_plugin(name, schema)], bus_schema=bus_schema)
    try:
        await platform.start()
        transport = httpx.ASGITransport(app=platform.app)
        # The local store's signed URLs name 127.0.0.1:8080: this client serves them too.
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8080", auth=GatewayIdentity(name)
        ) as http:
            yield http, f"/{name}"
    finally:
        await platform.stop()
        await registry_database.drop_schema(schema)
        await registry_database.drop_schema(bus_schema)


@pytest.fixture
async def s3_registry(
    s3_endpoint: S3Endpoint,
    database_url: str,
    registry_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    bucket = unique_bucket("reg")
    for variable, value in {
        "S3_ENDPOINT_URL": s3_endpoint.url,
        "S3_BUCKET": bucket,
        "S3_REGION": s3_endpoint.region,
        "S3_ACCESS_KEY": s3_endpoint.access_key,
        "S3_SECRET_KEY": s3_endpoint.secret_key,
    }.items():
        monkeypatch.setenv(f"MLPLANE_REGISTRY_{variable}", value)
    try:
        async for hosted in host(database_url, registry_database, tmp_path / "data"):
            yield hosted
    finally:
        await delete_bucket(s3_endpoint, bucket)


@pytest.fixture
async def local_registry(
    database_url: str, registry_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    for variable in list(os.environ):
        if variable.startswith("MLPLANE_REGISTRY_S3_"):
            monkeypatch.delenv(variable)
    async for hosted in host(database_url, registry_database, tmp_path / "data"):
        yield hosted


def payload(size: int) -> bytes:
    block = os.urandom(MIB)
    return (block * (size // MIB + 1))[:size]


async def upload(
    http: httpx.AsyncClient,
    parts_client: httpx.AsyncClient,
    base: str,
    team: str,
    data: bytes,
    sha256: str | None = None,
) -> httpx.Response:
    """CI's side of an upload: plan, PUT the parts, complete; the completion's response."""
    upload_id, etags = await send_parts(http, parts_client, base, team, data, sha256)
    return await complete(http, base, team, upload_id, etags)


async def complete(
    http: httpx.AsyncClient, base: str, team: str, upload_id: str, etags: list[dict[str, Any]]
) -> httpx.Response:
    return await http.post(
        f"{base}/models/fraud/uploads/{upload_id}/complete",
        json={"parts": etags},
        headers={"X-Mlplane-Team": team},
    )


async def send_parts(
    http: httpx.AsyncClient,
    parts_client: httpx.AsyncClient,
    base: str,
    team: str,
    data: bytes,
    sha256: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Plan an upload and PUT its parts; its id and the parts' ETags."""
    head = {"X-Mlplane-Team": team}
    declared = sha256 or hashlib.sha256(data).hexdigest()
    planned = await http.post(
        f"{base}/models/fraud/uploads",
        json={"size_bytes": len(data), "sha256": declared, "filename": "model.onnx"},
        headers=head,
    )
    assert planned.status_code == 201, planned.text
    plan = planned.json()
    assert plan["key"].startswith(f"teams/{team}/models/fraud/")
    etags = []
    offset = 0
    for part in plan["parts"]:
        chunk = data[offset : offset + part["size_bytes"]]
        offset += part["size_bytes"]
        put = await parts_client.put(part["url"], content=chunk)
        assert put.status_code == 200, put.text
        etags.append({"number": part["number"], "etag": put.headers["ETag"]})
    assert offset == len(data)
    return str(plan["upload_id"]), etags


async def assert_only_the_owner_completes(
    http: httpx.AsyncClient, parts_client: httpx.AsyncClient, base: str, team: str
) -> None:
    data = payload(PART + 11)
    upload_id, etags = await send_parts(http, parts_client, base, team, data)
    # Wrong ETags: the store would refuse them naming the upload's key, if it were asked.
    bogus = [{"number": e["number"], "etag": '"' + "0" * 32 + '"'} for e in etags]
    for parts in (bogus, etags):
        stolen = await complete(http, base, f"{team}-other", upload_id, parts)
        assert stolen.status_code == 404, stolen.text
        assert stolen.headers["content-type"].startswith("application/problem+json")
        assert f"teams/{team}/" not in stolen.text
    # The other team's attempt left the upload as it was: its owner completes it.
    owned = await complete(http, base, team, upload_id, etags)
    assert owned.status_code == 200, owned.text
    assert owned.json()["sha256"] == hashlib.sha256(data).hexdigest()


async def upload_register_download(
    http: httpx.AsyncClient, parts_client: httpx.AsyncClient, base: str, team: str
) -> str:
    """The whole flow; the artifact's URI."""
    head = {"X-Mlplane-Team": team}
    assert (await http.post(f"{base}/models", json={"name": "fraud"}, headers=head)).is_success
    data = payload(2 * PART + 123)  # three parts, the last one short
    completed = await upload(http, parts_client, base, team, data)
    assert completed.status_code == 200, completed.text
    artifact: dict[str, Any] = completed.json()
    assert artifact["size_bytes"] == len(data)
    assert artifact["sha256"] == hashlib.sha256(data).hexdigest()

    body = {
        "framework": "onnx",
        "artifact": {k: artifact[k] for k in ("uri", "size_bytes", "sha256")},
        "lineage": LINEAGE,
    }
    created = await http.post(f"{base}/models/fraud/versions", json=body, headers=head)
    assert created.status_code == 201, created.text
    assert created.json()["artifact"]["uri"] == artifact["uri"]

    link = await http.get(f"{base}/models/fraud/versions/1/download", headers=head)
    assert link.status_code == 200, link.text
    assert link.json()["sha256"] == artifact["sha256"]
    got = await parts_client.get(link.json()["url"])
    assert got.status_code == 200
    assert got.content == data

    redirected = await http.get(
        f"{base}/models/fraud/versions/1/download", params={"redirect": "true"}, headers=head
    )
    assert redirected.status_code == 307
    assert (await parts_client.get(redirected.headers["location"])).content == data

    # Another team sees neither the version nor its download.
    other = {"X-Mlplane-Team": f"{team}-other"}
    hidden = await http.get(f"{base}/models/fraud/versions/1/download", headers=other)
    assert hidden.status_code == 404
    return str(artifact["uri"])


async def assert_wrong_sha256_refused(
    http: httpx.AsyncClient, parts_client: httpx.AsyncClient, base: str, team: str
) -> None:
    data = payload(PART + 7)
    declared = "0" * 64
    refused = await upload(http, parts_client, base, team, data, sha256=declared)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    actual = hashlib.sha256(data).hexdigest()
    assert problem["declared"] == declared
    assert problem["actual"] == actual
    assert declared in problem["detail"]
    assert actual in problem["detail"]


class TestOnS3:
    async def test_upload_complete_register_download(
        self, s3_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = s3_registry
        async with httpx.AsyncClient(timeout=60) as storage:
            uri = await upload_register_download(http, storage, base, team)
        assert uri.startswith("s3://reg-")

    async def test_a_wrong_sha256_is_refused_naming_both_values(
        self, s3_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = s3_registry
        async with httpx.AsyncClient(timeout=60) as storage:
            await assert_wrong_sha256_refused(http, storage, base, team)

    async def test_another_team_cannot_complete_an_upload(
        self, s3_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = s3_registry
        async with httpx.AsyncClient(timeout=60) as storage:
            await assert_only_the_owner_completes(http, storage, base, team)


class TestOnLocalDisk:
    async def test_upload_complete_register_download(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = local_registry
        uri = await upload_register_download(http, http, base, team)
        assert uri.startswith("file://")

    async def test_a_wrong_sha256_is_refused_naming_both_values(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = local_registry
        await assert_wrong_sha256_refused(http, http, base, team)

    async def test_another_team_cannot_complete_an_upload(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = local_registry
        await assert_only_the_owner_completes(http, http, base, team)


async def completed_upload(
    http: httpx.AsyncClient, parts_client: httpx.AsyncClient, base: str, team: str
) -> dict[str, Any]:
    head = {"X-Mlplane-Team": team}
    assert (await http.post(f"{base}/models", json={"name": "fraud"}, headers=head)).is_success
    completed = await upload(http, parts_client, base, team, payload(PART + 5))
    assert completed.status_code == 200, completed.text
    artifact: dict[str, Any] = completed.json()
    return artifact


def version_of(artifact: dict[str, Any]) -> dict[str, Any]:
    return {
        "framework": "onnx",
        "artifact": {k: artifact[k] for k in ("uri", "size_bytes", "sha256")},
        "lineage": LINEAGE,
    }


class TestVerifiedUploadsStayWithTheirModel:
    async def test_another_team_or_model_cannot_register_a_verified_upload(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = local_registry
        artifact = await completed_upload(http, http, base, team)
        other_team = {"X-Mlplane-Team": f"{team}-other"}
        own_team = {"X-Mlplane-Team": team}
        for head, model in ((other_team, "fraud"), (own_team, "churn")):
            await http.post(f"{base}/models", json={"name": model}, headers=head)
            refused = await http.post(
                f"{base}/models/{model}/versions", json=version_of(artifact), headers=head
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"].endswith("/artifact-refused")
        created = await http.post(
            f"{base}/models/fraud/versions", json=version_of(artifact), headers=own_team
        )
        assert created.status_code == 201, created.text

    async def test_the_store_s_own_files_are_never_a_version_s_artifact(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str, tmp_path: Path
    ) -> None:
        http, base = local_registry
        artifact = await completed_upload(http, http, base, team)  # creates the signing key
        store = tmp_path / "data" / base.strip("/") / "artifacts"
        key_file = store.with_name("artifacts.signing-key")
        assert key_file.is_file()
        assert not (store / ".signing-key").exists()
        key_sha256 = hashlib.sha256(key_file.read_bytes()).hexdigest()
        body = version_of(artifact)
        body["artifact"] |= {"uri": key_file.as_uri(), "sha256": key_sha256, "size_bytes": 64}

        refused = await http.post(
            f"{base}/models/fraud/versions", json=body, headers={"X-Mlplane-Team": team}
        )

        assert refused.status_code == 422, refused.text
        assert key_sha256 not in refused.text

    async def test_the_mlflow_api_refuses_a_host_file_as_source(
        self, local_registry: tuple[httpx.AsyncClient, str], team: str
    ) -> None:
        http, base = local_registry
        head = {"X-Mlplane-Team": team}
        await http.post(f"{base}/models", json={"name": "fraud"}, headers=head)
        tags = {
            "mlplane.sha256": "ab" * 32,
            "mlplane.size_bytes": "64",
            "mlplane.framework": "onnx",
            "mlplane.git_repository": LINEAGE["git_repository"],
            "mlplane.commit_sha": LINEAGE["commit_sha"],
            "mlplane.ci_run_url": LINEAGE["ci_run_url"],
        }
        refused = await http.post(
            f"{base}/api/2.0/mlflow/model-versions/create",
            json={
                "name": "fraud",
                "source": "file:///etc/passwd",
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
            headers=head,
        )

        assert refused.status_code in (400, 422), refused.text
        assert "not in team" in refused.text
