"""mlplane as the model registry of a real MLflow, as a team on MLflow switches to it.

A real `mlflow server` (SQLite backend, artifacts served from a temp dir, started
here on a free port) is the tracking server; `mlplane up` (embedded defaults) is the
registry, reached through its gateway with the initial admin key as
`MLFLOW_TRACKING_TOKEN`, and told where the tracking server is
(`MLPLANE_REGISTRY_MLFLOW_TRACKING_URI`) and that team `default` may register its
artifacts (`MLPLANE_REGISTRY_MLFLOW_TRACKING_LOCATIONS`); the builder is told the same
(`MLPLANE_BUILDER_MLFLOW_TRACKING_*`), so a logged model goes on to be built and
scanned. The MLflow client is unchanged: `MLFLOW_TRACKING_URI` and
`MLFLOW_REGISTRY_URI` are all it is told.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from mlplane_testing.mlflow_server import MlflowServer, mlflow_server
from sklearn.linear_model import LogisticRegression

from .conftest import RunningPlatform, running_platform

LIFECYCLE_WITHIN_S = 60.0
SETTLED_WITHIN_S = 120.0
COMMIT = "3f1c2a9b7d4e5f60718293a4b5c6d7e8f9012345"
REPOSITORY = "https://git.example.com/acme/fraud"
TREE_MEDIA_TYPE = "application/vnd.mlplane.artifact-tree.v1"


Tracking = MlflowServer


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    """A real `mlflow server` on a free 127.0.0.1 port, stopped after the module."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture(scope="module")
def registry_platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory, tracking: Tracking
) -> Iterator[RunningPlatform]:
    yield from running_platform(
        platform_database,
        tmp_path_factory,
        {
            "MLPLANE_REGISTRY_MLFLOW_TRACKING_URI": tracking.url,
            "MLPLANE_REGISTRY_MLFLOW_TRACKING_LOCATIONS": json.dumps(
                {"default": ["mlflow-artifacts:/"]}
            ),
            "MLPLANE_REGISTRY_MLFLOW_REGISTRATION_POLL_S": "0.5",
            # The builder reads the model where the registry verified it: the same
            # tracking server, the same team locations.
            "MLPLANE_BUILDER_MLFLOW_TRACKING_URI": tracking.url,
            "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS": json.dumps(
                {"default": ["mlflow-artifacts:/"]}
            ),
        },
    )


@pytest.fixture(scope="module")
def admin_key(registry_platform: RunningPlatform) -> str:
    return (registry_platform.data_dir / "gateway" / "initial-admin-key").read_text().strip()


@pytest.fixture
def mlflow_env(
    tracking: Tracking,
    registry_platform: RunningPlatform,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> MlflowClient:
    """MLflow's environment as a team switching to mlplane sets it: three variables."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry_platform.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", admin_key)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(tracking.url)
    mlflow.set_registry_uri(registry_platform.url)
    return MlflowClient()


def _get(platform: RunningPlatform, key: str, path: str, **params: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{platform.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _native(platform: RunningPlatform, key: str, model: str, version: str) -> dict[str, Any]:
    return _get(platform, key, f"/v1/registry/models/{model}/versions/{version}")


def _settled(platform: RunningPlatform, key: str, model: str, version: str) -> dict[str, Any]:
    """The version's lifecycle once its build and scan are done (or one failed)."""
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while True:
        lifecycle: dict[str, Any] = _native(platform, key, model, version)["lifecycle"]
        if lifecycle["stage"] not in ("registered", "building", "built"):
            return lifecycle
        assert time.monotonic() < deadline, (
            f"{model} v{version} not scanned within {SETTLED_WITHIN_S:g} s: {lifecycle}\n"
            f"{platform.log_tail()}"
        )
        time.sleep(0.25)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _tree_sha256(directory: Path) -> tuple[int, str]:
    """What the registry computes for a directory: the sha256 of its sha256sum manifest."""
    files = _files(directory)
    manifest = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files)
    )
    return sum(map(len, files.values())), hashlib.sha256(manifest.encode()).hexdigest()


def _image_files(platform: RunningPlatform, build: dict[str, Any]) -> dict[str, bytes]:
    """The files of the image's layers, read from the OCI layout the builder wrote."""
    layout = platform.data_dir / "builder" / "images" / build["image_repository"]

    def blob(digest: str) -> bytes:
        data: bytes = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        return data

    files: dict[str, bytes] = {}
    for layer in json.loads(blob(build["image_digest"]))["layers"]:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    files["/" + member.name] = extracted.read()
    return files


def _train() -> LogisticRegression:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]] * 5)
    y = np.array([0, 1, 0, 1] * 5)
    return LogisticRegression().fit(x, y)


def test_log_model_registers_a_version_the_registry_verifies_and_announces(
    mlflow_env: MlflowClient,
    tracking: Tracking,
    registry_platform: RunningPlatform,
    admin_key: str,
) -> None:
    with mlflow.start_run() as run:
        mlflow.set_tags(
            {"mlflow.source.git.commit": COMMIT, "mlflow.source.git.repoURL": REPOSITORY}
        )
        info = mlflow.sklearn.log_model(
            _train(), name="model", registered_model_name="fraud-mlflow"
        )
    # log_model waited for the version to leave PENDING_REGISTRATION: it is READY.
    version = mlflow_env.get_model_version("fraud-mlflow", "1")
    assert version.status == "READY", version.status_message
    assert version.run_id == run.info.run_id
    assert version.source  # what the client sent (models:/m-...)
    uri = mlflow_env.get_model_version_download_uri("fraud-mlflow", "1")
    assert uri.startswith("mlflow-artifacts:/"), uri

    # The registry read the model directory itself: size and sha256 are the files'.
    native = _native(registry_platform, admin_key, "fraud-mlflow", "1")
    stored = tracking.artifacts / uri.removeprefix("mlflow-artifacts:/")
    size, sha256 = _tree_sha256(stored)
    assert native["artifact"]["sha256"] == sha256
    assert native["artifact"]["size_bytes"] == size
    assert native["artifact"]["media_type"] == TREE_MEDIA_TYPE
    # Lineage from the MLflow run's tags and page.
    assert native["lineage"]["commit_sha"] == COMMIT
    assert native["lineage"]["git_repository"] == REPOSITORY
    assert native["lineage"]["ci_run_url"].startswith(f"{tracking.url}/#/experiments/")
    assert (native["registration"], native["attested"]) == ("ready", True)
    assert str(info.registered_model_version) == "1"

    # model.version.registered went out: the builder read the model directory from the
    # tracking server, checked it against the registry's digest and built the image;
    # the scanner scanned it.
    lifecycle = _settled(registry_platform, admin_key, "fraud-mlflow", "1")
    assert lifecycle["stage"] == "scanned", lifecycle
    assert lifecycle["build_failure"] is None
    [build] = _get(registry_platform, admin_key, "/v1/builder/builds", model="fraud-mlflow")[
        "builds"
    ]
    assert build["status"] == "succeeded", build
    assert build["artifact_sha256"] == sha256
    assert lifecycle["image"] == build["image"]
    scans = _get(registry_platform, admin_key, f"/v1/scanner/scans/{build['image_digest']}")
    assert [scan["state"] for scan in scans["scans"]] == ["done"], scans
    assert lifecycle["scan_verdict"] == scans["scans"][0]["verdict"]
    # The image holds the model directory as MLflow logged it, at MODEL_PATH.
    assert _image_files(registry_platform, build) == {
        f"/models/fraud-mlflow/1/{path}": data for path, data in _files(stored).items()
    }

    # The model loads back through the registry, as MLflow users load it.
    loaded = mlflow.pyfunc.load_model("models:/fraud-mlflow/1")
    assert list(loaded.predict(np.array([[0.0, 1.0]]))) == [0]


def test_a_version_without_lineage_is_ready_and_unattested(
    mlflow_env: MlflowClient, registry_platform: RunningPlatform, admin_key: str
) -> None:
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(_train(), name="model")
    mlflow_env.create_registered_model("plain")
    created = mlflow_env.create_model_version("plain", source=info.model_uri)
    assert created.status in ("PENDING_REGISTRATION", "READY")
    deadline = time.monotonic() + LIFECYCLE_WITHIN_S
    while created.status == "PENDING_REGISTRATION":
        assert time.monotonic() < deadline
        time.sleep(0.25)
        created = mlflow_env.get_model_version("plain", created.version)
    assert created.status == "READY", created.status_message
    assert "unattested" in created.status_message
    native = _native(registry_platform, admin_key, "plain", created.version)
    assert native["lineage"]["commit_sha"] == ""
    assert (native["registration"], native["attested"]) == ("ready", False)


def test_sources_outside_the_teams_space_fail_registration_saying_why(
    mlflow_env: MlflowClient,
) -> None:
    mlflow_env.create_registered_model("outside")
    with pytest.raises(MlflowException) as failed:
        mlflow_env.create_model_version("outside", source="s3://someone-elses-bucket/model.pkl")
    assert "FAILED_REGISTRATION" in failed.value.message
    assert "not in team default's space" in failed.value.message
    with pytest.raises(MlflowException) as missing:
        mlflow_env.create_model_version("outside", source="runs:/0123456789abcdef/model")
    assert "FAILED_REGISTRATION" in missing.value.message
    with pytest.raises(RestException) as bad:
        mlflow_env.create_model_version("outside", source="/home/me/model")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_whole_client_api_through_the_gateway(
    mlflow_env: MlflowClient, registry_platform: RunningPlatform, admin_key: str
) -> None:
    client = mlflow_env
    with mlflow.start_run() as run:
        mlflow.set_tag("mlflow.source.git.commit", COMMIT)
        mlflow.sklearn.log_model(_train(), name="model")
    source = f"runs:/{run.info.run_id}/model"

    client.create_registered_model("churn", tags={"owner": "risk"}, description="first")
    for _ in range(3):
        client.create_model_version("churn", source=source, run_id=run.info.run_id)
    # Each version is built and scanned, which changes it: once that is over, the order
    # below depends on the client's calls alone.
    for number in ("1", "2", "3"):
        assert _settled(registry_platform, admin_key, "churn", number)["stage"] == "scanned"
    versions = client.search_model_versions("name = 'churn'")
    # MLflow's default order: the latest change first, then the newest version.
    assert [v.version for v in versions] == [
        v.version
        for v in sorted(
            versions, key=lambda v: (v.last_updated_timestamp, int(v.version)), reverse=True
        )
    ]
    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    assert {v.status for v in versions} == {"READY"}
    ordered = client.search_model_versions("name = 'churn'", order_by=["version_number DESC"])
    assert [v.version for v in ordered] == ["3", "2", "1"]

    # Tags, descriptions, aliases.
    client.set_model_version_tag("churn", "2", "reviewed", "yes")
    client.update_model_version("churn", "2", description="the good one")
    client.set_registered_model_alias("churn", "champion", "2")
    client.set_registered_model_alias("churn", "challenger", "3")
    assert client.get_model_version_by_alias("churn", "champion").version == "2"
    client.set_registered_model_tag("churn", "tier", "gold")
    client.delete_registered_model_tag("churn", "owner")
    client.update_registered_model("churn", description="second")

    # Search: the filter grammar, order_by, pages.
    found = client.search_model_versions("name = 'churn' AND tags.reviewed = 'yes'")
    assert [v.version for v in found] == ["2"]
    found = client.search_model_versions(f"run_id IN ('{run.info.run_id}', 'other')")
    assert len(found) == 3
    found = client.search_model_versions(
        "name ILIKE 'CHU%' AND version_number >= 2", order_by=["version_number ASC"]
    )
    assert [v.version for v in found] == ["2", "3"]
    newest = ["version_number DESC"]
    first = client.search_model_versions("name = 'churn'", max_results=2, order_by=newest)
    assert [v.version for v in first] == ["3", "2"]
    assert first.token
    rest = client.search_model_versions(
        "name = 'churn'", max_results=2, order_by=newest, page_token=first.token
    )
    assert [v.version for v in rest] == ["1"]
    assert [m.name for m in client.search_registered_models("tags.tier = 'gold'")] == ["churn"]
    assert [m.name for m in client.search_registered_models("name != 'churn'")] != ["churn"]
    with pytest.raises(RestException) as bad_filter:
        client.search_model_versions("name = 'churn' OR name = 'x'")
    assert bad_filter.value.error_code == "INVALID_PARAMETER_VALUE"

    latest = client.get_latest_versions("churn")
    assert [v.version for v in latest] == ["3"]

    # Copy a version to another model (created on the way).
    copied = client.copy_model_version("models:/churn/2", "churn-shadow")
    assert (copied.name, copied.version, copied.status) == ("churn-shadow", "1", "READY")
    assert client.get_model_version_download_uri(
        "churn-shadow", "1"
    ) == client.get_model_version_download_uri("churn", "2")

    # Rename: versions and aliases follow.
    client.rename_registered_model("churn", "churn-v2")
    renamed = client.get_registered_model("churn-v2")
    assert renamed.aliases == {"champion": "2", "challenger": "3"}
    assert renamed.description == "second"
    assert renamed.tags == {"tier": "gold"}
    assert client.get_model_version_by_alias("churn-v2", "champion").description == "the good one"
    with pytest.raises(RestException) as gone:
        client.get_registered_model("churn")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # Deletes.
    client.delete_registered_model_alias("churn-v2", "challenger")
    client.delete_model_version_tag("churn-v2", "2", "reviewed")
    client.delete_model_version("churn-v2", "1")
    # MLflow's default order: the latest change first (version 2 lost a tag just now).
    assert [v.version for v in client.search_model_versions("name = 'churn-v2'")] == ["2", "3"]
    client.delete_registered_model("churn-shadow")
    with pytest.raises(RestException) as deleted:
        client.get_model_version("churn-shadow", "1")
    assert deleted.value.error_code == "RESOURCE_DOES_NOT_EXIST"
