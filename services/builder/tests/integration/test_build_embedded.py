"""Embedded mode (`make run`): no registry configured, images written as OCI image
layouts on the local disk, artifacts read from the local-disk store's `file://` URIs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mlplane_builder.domain import BuildStatus
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.image.manifest import parse_image_manifest
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables
from mlplane_contracts import events as ev
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import OciRegistryEndpoint

from ..conftest import registered
from .builds import builder, deliver_to, outbox_events, run_until_finished, settings
from .images import read_tar_layer


def objects_dir(data_dir: Path) -> Path:
    """The embedded registry's local-disk objects under the platform's data directory."""
    return data_dir / "registry" / "artifacts" / "objects"


def local_artifact(root: Path, content: bytes, team: str) -> tuple[str, str]:
    path = objects_dir(root) / "teams" / team / "models" / "fraud" / "x1" / "model.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path.as_uri(), hashlib.sha256(content).hexdigest()


async def test_embedded_build_writes_an_oci_layout_with_a_scratch_base(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    tmp_path: Path,
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    uri, sha256 = local_artifact(tmp_path, content, team)
    await deliver_to(
        uow_factory, tables, registered(team, uri=uri, sha256=sha256, size=len(content))
    )
    async with builder(uow_factory, tables, settings(), tmp_path) as (runner, worker):
        build = await run_until_finished(worker)
        layout_root = runner.layouts_root / "mlplane" / team / "fraud"
    assert build.status is BuildStatus.SUCCEEDED, build.error
    assert build.note is not None
    assert "scratch base" in build.note
    assert build.image_repository == f"mlplane/{team}/fraud"

    layout = OciLayout(layout_root)
    stored = await layout.read_manifest("v1")
    assert stored is not None
    assert stored.digest == build.image_digest
    parsed = parse_image_manifest(stored.content, stored.media_type)
    assert len(parsed.layers) == 1
    files = read_tar_layer(await layout.read_blob(parsed.layers[0].digest))
    assert files == {"/models/fraud/1/model.onnx": (content, 0o644)}
    config = json.loads(await layout.read_blob(parsed.config.digest))
    assert config["os"] == "linux"
    assert config["architecture"] == "amd64"
    assert "MODEL_PATH=/models/fraud/1/model.onnx" in config["config"]["Env"]

    [event] = await outbox_events(uow_factory, tables)
    assert isinstance(event.data, ev.ImageBuilt)
    assert event.data.image.repository == f"mlplane/{team}/fraud"

    # The same version pushed to a registry is the same image, to the byte.
    async with builder(
        uow_factory,
        tables,
        settings(registry_url=oci_registry.url, local_artifact_root=str(objects_dir(tmp_path))),
        tmp_path / "pushed",
    ) as (_, pusher):
        async with uow_factory() as uow:
            await BuilderService(uow, tables).rebuild(team, build.id)
            await uow.commit()
        pushed = await run_until_finished(pusher)
    assert pushed.status is BuildStatus.SUCCEEDED, pushed.error
    assert pushed.image_digest == build.image_digest


async def test_a_local_artifact_outside_the_data_directory_is_refused(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "id_rsa"
    secret.write_bytes(b"not for images")
    await deliver_to(
        uow_factory,
        tables,
        registered(
            team,
            uri=secret.as_uri(),
            sha256=hashlib.sha256(b"not for images").hexdigest(),
            size=14,
        ),
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    async with builder(uow_factory, tables, settings(), data_dir) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "artifact_unreadable"
    assert "MLPLANE_BUILDER_LOCAL_ARTIFACT_ROOT" in (build.error or "")
    assert hashlib.sha256(b"not for images").hexdigest() not in (build.error or "")


async def build_of(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, data_dir: Path, event: Any
) -> Any:
    await deliver_to(uow_factory, tables, event)
    async with builder(uow_factory, tables, settings(), data_dir) as (_, worker):
        return await run_until_finished(worker)


async def test_the_registry_s_signing_key_and_database_files_are_never_read(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    # The probe: files of the platform's data directory named with their real digest.
    key = tmp_path / "registry" / "artifacts" / ".signing-key"
    key.parent.mkdir(parents=True)
    key.write_text("ab" * 32)
    objects = objects_dir(tmp_path)
    own = objects / "teams" / team / "models" / "fraud"
    own.mkdir(parents=True)
    (own / "escape").symlink_to(key.parent)
    for version, uri in enumerate(
        (
            key.as_uri(),
            f"{own.as_uri()}/../../../../../.signing-key",
            f"{own.as_uri()}/escape/.signing-key",
            f"{objects.as_uri()}/teams/{team}-other/models/fraud/x/model.onnx",
        ),
        start=1,
    ):
        event = registered(
            team,
            version=version,
            uri=uri,
            sha256=hashlib.sha256(key.read_bytes()).hexdigest(),
            size=64,
        )
        build = await build_of(uow_factory, tables, tmp_path, event)
        assert build.status is BuildStatus.FAILED
        assert build.error_kind == "artifact_unreadable"
        assert build.attempts == 1  # not retryable
        assert hashlib.sha256(key.read_bytes()).hexdigest() not in (build.error or "")


async def test_an_s3_object_outside_the_registry_s_store_and_the_team_s_locations_is_refused(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    build = await build_of(
        uow_factory,
        tables,
        tmp_path,
        registered(team, uri=f"s3://mlplane-artifacts/teams/{team}-other/models/fraud/x/m.onnx"),
    )
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "artifact_unreadable"
