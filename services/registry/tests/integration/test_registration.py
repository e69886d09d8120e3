"""Versions created from MLflow with only a source: the registration worker reads them.

The registry's MLflow API (its own `build`, served in-process) creates the versions;
the registration worker runs once per version against the real S3 server
(SeaweedFS), a bucket of the test's team configured as its location.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest
from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE
from mlplane_registry.domain import TeamArtifactLocations
from mlplane_registry.main import build
from mlplane_registry.mlflow.settings import MlflowApiSettings
from mlplane_registry.registration.reading import ArtifactReader
from mlplane_registry.registration.worker import RegistrationConfig, RegistrationWorker
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.s3_server import S3Endpoint, delete_bucket, unique_bucket
from mlplane_testing.service import service_app, service_context
from sqlalchemy import text

COMMIT = "c" * 40


@pytest.fixture
async def bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:
    name = unique_bucket("reg")
    try:
        yield name
    finally:
        await delete_bucket(s3_endpoint, name)


@pytest.fixture
async def s3(s3_endpoint: S3Endpoint, bucket: str) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    async with session.client("s3", endpoint_url=s3_endpoint.url) as client:
        await client.create_bucket(Bucket=bucket)
        yield client


@pytest.fixture
def locations(team: str, bucket: str) -> dict[str, list[str]]:
    return {team: [f"s3://{bucket}/models/"]}


@pytest.fixture
async def mlflow_http(
    registry_database: Database,
    tables: RegistryTables,
    team: str,
    tmp_path: Path,
    locations: dict[str, list[str]],
) -> AsyncIterator[httpx.AsyncClient]:
    settings = RegistrySettings(team_artifact_locations=locations)
    context = service_context(
        "registry", registry_database, tables.messaging, data_dir=tmp_path / "registry"
    )
    parts = build(context, tables, settings, MlflowApiSettings(default_team=team))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service_app(context, parts)),
        base_url="http://registry.test/api/2.0/mlflow",
        auth=GatewayIdentity("registry"),
    ) as http:
        yield http


@pytest.fixture
def worker(
    uow_factory: UnitOfWorkFactory,
    tables: RegistryTables,
    s3: Any,
    locations: dict[str, list[str]],
) -> RegistrationWorker:
    return RegistrationWorker(
        "registry",
        uow_factory,
        tables,
        TeamArtifactLocations.parse(locations),
        ArtifactReader(lambda: s3, None, max_files=100),
        None,
        RegistrationConfig(concurrency=1, lease_s=30, poll_s=1, attempts=2),
    )


async def create(http: httpx.AsyncClient, source: str, **extra: Any) -> dict[str, Any]:
    answer = await http.post(
        "/model-versions/create", json={"name": "fraud", "source": source, **extra}
    )
    assert answer.status_code == 200, answer.text
    version: dict[str, Any] = answer.json()["model_version"]
    return version


async def get(http: httpx.AsyncClient, version: str) -> dict[str, Any]:
    answer = await http.get("/model-versions/get", params={"name": "fraud", "version": version})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["model_version"]
    return found


async def registered_events(database: Database, tables: RegistryTables) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        rows = await session.execute(
            text(f'SELECT type, body FROM "{tables.metadata.schema}".outbox ORDER BY position')
        )
        return [
            json.loads(body) for kind, body in rows if kind.endswith("model.version.registered.v1")
        ]


async def test_a_bare_s3_file_is_read_hashed_and_announced(
    mlflow_http: httpx.AsyncClient,
    worker: RegistrationWorker,
    s3: Any,
    bucket: str,
    registry_database: Database,
    tables: RegistryTables,
) -> None:
    content = b"model bytes " * 100_000
    await s3.put_object(Bucket=bucket, Key="models/fraud/model.pkl", Body=content)
    assert (await mlflow_http.post("/registered-models/create", json={"name": "fraud"})).is_success
    created = await create(
        mlflow_http,
        f"s3://{bucket}/models/fraud/model.pkl",
        run_link="https://ci.example.com/runs/1",
        tags=[
            {"key": "mlplane.commit_sha", "value": COMMIT},
            {"key": "mlplane.git_repository", "value": "https://git.example.com/ml/fraud"},
        ],
    )
    assert created["status"] == "PENDING_REGISTRATION"
    assert await registered_events(registry_database, tables) == []  # nothing yet

    assert await worker.run_once() == "ready"
    version = await get(mlflow_http, "1")
    assert version["status"] == "READY"
    [event] = await registered_events(registry_database, tables)
    assert event["artifact"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert event["artifact"]["size_bytes"] == len(content)
    assert event["attested"] is True
    assert event["lineage"]["commit_sha"] == COMMIT
    assert event["lineage"]["ci_run_url"] == "https://ci.example.com/runs/1"
    assert await worker.run_once() is None  # the job is done


async def test_a_directory_is_hashed_by_its_manifest_and_without_lineage_is_unattested(
    mlflow_http: httpx.AsyncClient,
    worker: RegistrationWorker,
    s3: Any,
    bucket: str,
    registry_database: Database,
    tables: RegistryTables,
) -> None:
    files = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04" * 1000}
    for name, data in files.items():
        await s3.put_object(Bucket=bucket, Key=f"models/fraud/v2/{name}", Body=data)
    await mlflow_http.post("/registered-models/create", json={"name": "fraud"})
    await create(mlflow_http, f"s3://{bucket}/models/fraud/v2")
    assert await worker.run_once() == "ready"
    version = await get(mlflow_http, "1")
    assert version["status"] == "READY"
    assert "unattested" in version["status_message"]
    manifest = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files)
    )
    [event] = await registered_events(registry_database, tables)
    assert event["artifact"]["sha256"] == hashlib.sha256(manifest.encode()).hexdigest()
    assert event["artifact"]["size_bytes"] == sum(len(d) for d in files.values())
    assert event["artifact"]["media_type"] == "application/vnd.mlplane.artifact-tree.v1"
    assert event["attested"] is False
    assert event["lineage"]["commit_sha"] == "0" * 40  # the contract's placeholder


async def test_a_directory_is_announced_as_one_whatever_media_type_was_given(
    mlflow_http: httpx.AsyncClient,
    worker: RegistrationWorker,
    s3: Any,
    bucket: str,
    registry_database: Database,
    tables: RegistryTables,
) -> None:
    # The builder reads an artifact as a directory by its media type alone: a directory
    # is never announced as a file, nor a file as a directory.
    await s3.put_object(Bucket=bucket, Key="models/fraud/v3/MLmodel", Body=b"flavors: {}\n")
    await s3.put_object(Bucket=bucket, Key="models/fraud/m.onnx", Body=b"onnx")
    await mlflow_http.post("/registered-models/create", json={"name": "fraud"})
    claimed = [{"key": "mlplane.media_type", "value": "application/octet-stream"}]
    await create(mlflow_http, f"s3://{bucket}/models/fraud/v3", tags=claimed)
    tree = [{"key": "mlplane.media_type", "value": ARTIFACT_TREE_MEDIA_TYPE}]
    await create(mlflow_http, f"s3://{bucket}/models/fraud/m.onnx", tags=tree)
    assert await worker.run_once() == "ready"
    assert await worker.run_once() == "failed"
    [event] = await registered_events(registry_database, tables)
    assert event["artifact"]["media_type"] == ARTIFACT_TREE_MEDIA_TYPE
    refused = await get(mlflow_http, "2")
    assert refused["status"] == "FAILED_REGISTRATION"
    assert "is a single file" in refused["status_message"]


async def test_what_cannot_be_registered_fails_with_what_to_do(
    mlflow_http: httpx.AsyncClient,
    worker: RegistrationWorker,
    s3: Any,
    bucket: str,
    registry_database: Database,
    tables: RegistryTables,
) -> None:
    await s3.put_object(Bucket=bucket, Key="models/fraud/m.pkl", Body=b"abc")
    await s3.put_object(Bucket=bucket, Key="elsewhere/m.pkl", Body=b"abc")
    await mlflow_http.post("/registered-models/create", json={"name": "fraud"})
    # Outside the team's locations: refused before anything is read.
    await create(mlflow_http, f"s3://{bucket}/elsewhere/m.pkl")
    # Nothing there.
    await create(mlflow_http, f"s3://{bucket}/models/fraud/missing.pkl")
    # A tracking server source without a tracking server.
    await create(mlflow_http, "models:/m-0123456789abcdef")
    for _ in range(3):
        assert await worker.run_once() == "failed"
    versions = [await get(mlflow_http, str(n)) for n in range(1, 4)]
    assert {v["status"] for v in versions} == {"FAILED_REGISTRATION"}
    messages = [v["status_message"] for v in versions]
    assert "not in team" in messages[0]
    assert "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS" in messages[0]
    assert "nothing is stored" in messages[1]
    assert "MLPLANE_REGISTRY_MLFLOW_TRACKING_URI" in messages[2]
    assert await registered_events(registry_database, tables) == []

    # Declared sha256 and size are checked against the team's locations at once, as
    # mlplane's own API does (the builder checks the bytes when it reads them); outside
    # them the version is refused outright.
    declared = [
        {"key": "mlplane.sha256", "value": "0" * 64},
        {"key": "mlplane.size_bytes", "value": "3"},
    ]
    ready = await create(mlflow_http, f"s3://{bucket}/models/fraud/m.pkl", tags=declared)
    assert ready["status"] == "READY"
    refused = await mlflow_http.post(
        "/model-versions/create",
        json={"name": "fraud", "source": f"s3://{bucket}/elsewhere/m.pkl", "tags": declared},
    )
    assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"


async def test_a_copy_is_ready_at_once_with_the_originals_artifact(
    mlflow_http: httpx.AsyncClient,
    worker: RegistrationWorker,
    s3: Any,
    bucket: str,
) -> None:
    await s3.put_object(Bucket=bucket, Key="models/fraud/m.pkl", Body=b"abc")
    await mlflow_http.post("/registered-models/create", json={"name": "fraud"})
    await create(mlflow_http, f"s3://{bucket}/models/fraud/m.pkl")
    pending = await mlflow_http.post(
        "/model-versions/create", json={"name": "fraud", "source": "models:/fraud/1"}
    )
    assert pending.json()["error_code"] == "INVALID_STATE"  # not READY yet
    assert await worker.run_once() == "ready"
    copied = await create(mlflow_http, "models:/fraud/1")
    assert copied["status"] == "READY"
    assert copied["source"] == "models:/fraud/1"
    uri = await mlflow_http.get(
        "/model-versions/get-download-uri", params={"name": "fraud", "version": copied["version"]}
    )
    assert uri.json()["artifact_uri"] == f"s3://{bucket}/models/fraud/m.pkl"
