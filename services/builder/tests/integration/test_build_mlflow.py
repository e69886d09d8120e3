"""An MLflow model logged to a real tracking server (`mlflow server`, its artifact proxy)
built into an image: the builder reads the model directory where the registry verified
it (`mlflow-artifacts:/...`), checks it against the registered tree digest while it
streams, and lays the directory out as the model layer. Teams stay confined to their
tracking locations."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from mlplane_builder.domain import Build, BuildStatus
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.image.manifest import parse_image_manifest
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables
from mlplane_contracts import events as ev
from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE, tree_digest
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.mlflow_server import MlflowServer, mlflow_server
from mlplane_testing.s3_server import S3Endpoint
from sklearn.linear_model import LogisticRegression

from ..conftest import registered
from .builds import builder, deliver_to, outbox_events, run_until_finished, settings
from .images import read_tar_layer


@dataclass(frozen=True)
class LoggedModel:
    uri: str
    """`mlflow-artifacts:///<experiment>/models/m-<id>/artifacts`, as the registry
    announces what it resolved (MLflow's `mlflow-artifacts:/...` with an empty host)."""
    directory: Path
    """Where the tracking server keeps it."""


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="module")
def logged(tracking: MlflowServer) -> LoggedModel:
    """A scikit-learn model logged as MLflow users log it, through the artifact proxy."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking.url)
    try:
        x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]] * 5)
        y = np.array([0, 1, 0, 1] * 5)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(LogisticRegression().fit(x, y), name="model")
        uri = MlflowClient(tracking.url).get_logged_model(info.model_id).artifact_location
    finally:
        mlflow.set_tracking_uri(previous)
    assert uri.startswith("mlflow-artifacts:/"), uri
    path = uri.removeprefix("mlflow-artifacts:/")
    return LoggedModel(f"mlflow-artifacts:///{path}", tracking.artifacts / path)


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def digest_of(directory: Path) -> tuple[int, str]:
    """The registry's digest of the directory, from the files on the server's disk."""
    return tree_digest(
        (path, len(data), hashlib.sha256(data).hexdigest())
        for path, data in files_of(directory).items()
    )


async def build_model(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    data_dir: Path,
    uri: str,
    digest: tuple[int, str],
    **config: object,
) -> tuple[Build, Path]:
    """Deliver the version's event and build it into an OCI layout; the build and the
    layout's directory."""
    size, sha256 = digest
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=uri, sha256=sha256, size=size, media_type=ARTIFACT_TREE_MEDIA_TYPE),
    )
    async with builder(uow_factory, tables, settings(**config), data_dir) as (runner, worker):
        return await run_until_finished(worker), runner.layouts_root / "mlplane" / team / "fraud"


async def test_a_logged_mlflow_model_is_built_with_its_directory_as_the_model_layer(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    tracking: MlflowServer,
    logged: LoggedModel,
    tmp_path: Path,
) -> None:
    expected = files_of(logged.directory)
    assert {"MLmodel", "conda.yaml", "requirements.txt"} < set(expected), sorted(expected)
    digest = digest_of(logged.directory)

    build, layout_root = await build_model(
        uow_factory,
        tables,
        team,
        tmp_path,
        logged.uri,
        digest,
        mlflow_tracking_uri=tracking.url,
        mlflow_tracking_locations={team: ["mlflow-artifacts:/"]},
    )

    assert build.status is BuildStatus.SUCCEEDED, build.error
    layout = OciLayout(layout_root)
    stored = await layout.read_manifest("v1")
    assert stored is not None
    assert stored.digest == build.image_digest
    parsed = parse_image_manifest(stored.content, stored.media_type)
    [layer] = parsed.layers
    files = read_tar_layer(await layout.read_blob(layer.digest))
    assert files == {f"/models/fraud/1/{path}": (data, 0o644) for path, data in expected.items()}
    config = json.loads(await layout.read_blob(parsed.config.digest))
    assert "MODEL_PATH=/models/fraud/1" in config["config"]["Env"]
    assert config["config"]["Labels"]["io.mlplane.artifact-sha256"] == digest[1]
    [event] = await outbox_events(uow_factory, tables)
    assert isinstance(event.data, ev.ImageBuilt)


async def test_the_same_model_directory_gives_the_same_image(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    tracking: MlflowServer,
    logged: LoggedModel,
    tmp_path: Path,
) -> None:
    config: dict[str, object] = {
        "mlflow_tracking_uri": tracking.url,
        "mlflow_tracking_locations": {team: ["mlflow-artifacts:/"]},
    }
    first, _ = await build_model(
        uow_factory, tables, team, tmp_path / "a", logged.uri, digest_of(logged.directory), **config
    )
    assert first.status is BuildStatus.SUCCEEDED, first.error
    # Built again elsewhere, its files read in other chunk sizes: the same bytes.
    async with uow_factory() as uow:
        await BuilderService(uow, tables).rebuild(team, first.id)
        await uow.commit()
    again = settings(upload_chunk_size=64 * 1024, **config)
    async with builder(uow_factory, tables, again, tmp_path / "b") as (_, worker):
        second = await run_until_finished(worker)
    assert second.status is BuildStatus.SUCCEEDED, second.error
    assert second.reused is False
    assert second.image_digest == first.image_digest


async def test_a_team_reads_only_its_own_tracking_locations(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    tracking: MlflowServer,
    logged: LoggedModel,
    tmp_path: Path,
) -> None:
    experiment = logged.uri.removeprefix("mlflow-artifacts:///").split("/")[0]
    build, _ = await build_model(
        uow_factory,
        tables,
        team,
        tmp_path,
        logged.uri,
        digest_of(logged.directory),
        mlflow_tracking_uri=tracking.url,
        # Another team owns the whole server; this team only an experiment that is not
        # the model's (a prefix that is a string prefix of it, but not a path prefix).
        mlflow_tracking_locations={
            "someone-else": ["mlflow-artifacts:/"],
            team: [f"mlflow-artifacts:/{experiment}0/"],
        },
    )
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "artifact_unreadable"
    assert build.retryable is False
    assert "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS" in (build.error or "")


async def test_without_a_tracking_server_the_setting_is_named(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    logged: LoggedModel,
    tmp_path: Path,
) -> None:
    build, _ = await build_model(
        uow_factory,
        tables,
        team,
        tmp_path,
        logged.uri,
        digest_of(logged.directory),
        mlflow_tracking_locations={team: ["mlflow-artifacts:/"]},
    )
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "artifact_unreadable"
    assert "MLPLANE_BUILDER_MLFLOW_TRACKING_URI" in (build.error or "")


async def test_a_model_directory_changed_after_registration_is_refused(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    tracking: MlflowServer,
    logged: LoggedModel,
    tmp_path: Path,
) -> None:
    size, sha256 = digest_of(logged.directory)
    config = {
        "mlflow_tracking_uri": tracking.url,
        "mlflow_tracking_locations": {team: ["mlflow-artifacts:/"]},
    }
    # Same size, other bytes (as if a file was overwritten in place): the digest differs.
    changed, _ = await build_model(
        uow_factory, tables, team, tmp_path, logged.uri, (size, "0" * 64), **config
    )
    assert changed.status is BuildStatus.FAILED
    assert changed.error_kind == "artifact_mismatch"
    assert changed.retryable is False
    assert sha256 in (changed.error or "")  # what the builder read
    # A file added or removed: the listing's sizes no longer add up, nothing is read.
    other = f"{team}-x"
    grown, _ = await build_model(
        uow_factory,
        tables,
        other,
        tmp_path / "x",
        logged.uri,
        (size - 1, sha256),
        mlflow_tracking_uri=tracking.url,
        mlflow_tracking_locations={other: ["mlflow-artifacts:/"]},
    )
    assert grown.error_kind == "artifact_mismatch"
    assert f"{size} bytes" in (grown.error or "")


async def test_a_model_directory_in_the_team_s_s3_location_is_built_the_same_way(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    logged: LoggedModel,
    s3_endpoint: S3Endpoint,
    artifact_bucket: str,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    # A tracking server whose artifact root is in S3 hands out s3:// URIs: the registry
    # verifies the directory there, and the builder reads it there.
    session = aioboto3.Session(
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    files = files_of(logged.directory)
    async with session.client("s3", endpoint_url=s3_endpoint.url) as s3:
        await s3.create_bucket(Bucket=artifact_bucket)
        for path, data in files.items():
            await s3.put_object(
                Bucket=artifact_bucket, Key=f"mlflow/1/models/m-1/artifacts/{path}", Body=data
            )
    build, layout_root = await build_model(
        uow_factory,
        tables,
        team,
        tmp_path,
        f"s3://{artifact_bucket}/mlflow/1/models/m-1/artifacts",
        digest_of(logged.directory),
        team_artifact_locations={team: [f"s3://{artifact_bucket}/mlflow/"]},
        **s3_settings,
    )
    assert build.status is BuildStatus.SUCCEEDED, build.error
    layout = OciLayout(layout_root)
    stored = await layout.read_manifest("v1")
    assert stored is not None
    [layer] = parse_image_manifest(stored.content, stored.media_type).layers
    assert read_tar_layer(await layout.read_blob(layer.digest)) == {
        f"/models/fraud/1/{path}": (data, 0o644) for path, data in files.items()
    }
