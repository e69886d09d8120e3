"""Builds pushed to the real OCI registry (CNCF distribution), artifacts from real S3.

Images are read back by digest with a separate client: layers, config, labels, env,
and the model file inside the layer are checked byte for byte.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlplane_builder.domain import BuildStatus
from mlplane_builder.image.manifest import parse_image_manifest
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables
from mlplane_contracts import events as ev
from mlplane_oci import OciClient
from mlplane_oci.media_types import OCI_LAYER_GZIP
from mlplane_oci.reference import ImageReference
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import OciRegistryEndpoint

from ..conftest import registered
from .builds import (
    CountingTransport,
    builder,
    deliver_to,
    outbox_events,
    run_until_finished,
    settings,
)
from .conftest import UploadArtifact
from .images import read_tar_layer


async def test_build_pushes_the_model_on_the_base_with_labels_and_env(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(os.urandom(300_000), "model.joblib")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, version=4, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=oci_registry.url, base_images={"sklearn": base_image}, **s3_settings
    )
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.SUCCEEDED, build.error
    [event] = await outbox_events(uow_factory, tables)
    assert event.type == ev.IMAGE_BUILT
    data = event.data
    assert isinstance(data, ev.ImageBuilt)
    repository = f"mlplane/{team}/fraud"
    assert data.image.repository == f"{oci_registry.host}/{repository}"
    assert data.image.digest == build.image_digest
    assert data.base_image.reference.startswith(base_image.split("@")[0])
    assert data.backend is ev.BuildBackend.OCI_APPEND

    async with OciClient(oci_registry.url) as client:
        manifest = await client.get_manifest(repository, data.image.digest)
        assert manifest.digest == data.image.digest
        assert await client.manifest_digest(repository, "v4") == data.image.digest
        parsed = parse_image_manifest(manifest.content, manifest.media_type)
        base_ref = ImageReference.parse(base_image)
        base = parse_image_manifest(
            (await client.get_manifest(base_ref.repository, base_ref.reference)).content,
            manifest.media_type,
        )
        assert parsed.layers[:-1] == base.layers
        model_layer = parsed.layers[-1]
        assert model_layer.media_type == OCI_LAYER_GZIP
        assert [layer.digest for layer in data.layers] == [d.digest for d in parsed.layers]
        assert [layer.size_bytes for layer in data.layers] == [d.size for d in parsed.layers]
        assert data.size_bytes == sum(d.size for d in parsed.layers)

        image_config = json.loads(await client.get_blob(repository, parsed.config.digest))
        files = read_tar_layer(await client.get_blob(repository, model_layer.digest))

    model_path = "/models/fraud/4/model.joblib"
    assert files == {model_path: (artifact.content, 0o644)}
    env = image_config["config"]["Env"]
    assert f"MODEL_PATH={model_path}" in env
    assert "MODEL_NAME=fraud" in env
    assert "MODEL_VERSION=4" in env
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in env  # the base's env is kept
    labels = image_config["config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == "c" * 40
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/ml/fraud"
    assert labels["org.opencontainers.image.created"] == "2026-11-01T12:00:00Z"
    assert labels["io.mlplane.ci-run"] == "https://ci.example.com/runs/42"
    assert labels["io.mlplane.artifact-sha256"] == artifact.sha256
    assert labels["org.opencontainers.image.base.digest"] == base_image.split("@")[1]
    assert image_config["created"] == "2026-11-01T12:00:00Z"
    assert len(image_config["rootfs"]["diff_ids"]) == 3


async def test_base_layers_are_mounted_never_uploaded(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(os.urandom(50_000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    transport = CountingTransport()
    config = settings(
        registry_url=oci_registry.url, base_images={"default": base_image}, **s3_settings
    )
    async with builder(uow_factory, tables, config, tmp_path, transport=transport) as (
        runner,
        worker,
    ):
        build = await run_until_finished(worker)
        assert runner.target_client is not None
        stats = runner.target_client.stats
    assert build.status is BuildStatus.SUCCEEDED, build.error
    assert stats.blobs_mounted == 2
    # Two blobs uploaded: the model layer and the config; the base's two only mounted.
    assert stats.blobs_uploaded == 2
    assert transport.count("POST", "/blobs/uploads/") == 2 + 2  # 2 mounts + 2 uploads
    assert stats.bytes_uploaded < artifact.size + 10_000
    assert build.bytes_uploaded is not None
    assert build.bytes_uploaded < artifact.size + 10_000


async def test_two_builds_of_a_version_give_one_digest(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(os.urandom(200_000), "model.pt")
    event = registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size)
    digests: list[str | None] = []
    build_id: int | None = None
    # Two repositories: the second build finds nothing to reuse and builds it all again.
    for template in ("first/{team}/{model}", "second/{team}/{model}"):
        await deliver_to(uow_factory, tables, event)
        config = settings(
            registry_url=oci_registry.url,
            base_images={"sklearn": base_image},
            repository_template=template,
            **s3_settings,
        )
        async with builder(uow_factory, tables, config, tmp_path) as (runner, worker):
            if build_id is not None:
                async with uow_factory() as uow:
                    await BuilderService(uow, tables).rebuild(team, build_id)
                    await uow.commit()
            build = await run_until_finished(worker)
            assert runner.target_client is not None
            assert runner.target_client.stats.blobs_uploaded == 2
        assert build.status is BuildStatus.SUCCEEDED, build.error
        assert not build.reused
        digests.append(build.image_digest)
        build_id = build.id
    assert digests[0] == digests[1]


async def test_rebuild_uploads_nothing_and_emits_the_same_digest(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(os.urandom(100_000), "model.bin")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=oci_registry.url, base_images={"sklearn": base_image}, **s3_settings
    )
    transport = CountingTransport()
    async with builder(uow_factory, tables, config, tmp_path, transport=transport) as (
        runner,
        worker,
    ):
        first = await run_until_finished(worker)
        assert first.status is BuildStatus.SUCCEEDED, first.error
        async with uow_factory() as uow:
            await BuilderService(uow, tables).rebuild(team, first.id)
            await uow.commit()
        assert runner.target_client is not None
        runner.target_client.stats.reset()
        transport.requests.clear()
        second = await run_until_finished(worker)
        stats = runner.target_client.stats
    assert second.status is BuildStatus.SUCCEEDED, second.error
    assert second.reused
    assert second.image_digest == first.image_digest
    assert second.bytes_uploaded == 0
    assert stats.bytes_uploaded == 0
    assert stats.total("blob-upload") == 0
    assert stats.total("mount") == 0
    assert all(method in ("GET", "HEAD") for method, _ in transport.requests)
    built = [e for e in await outbox_events(uow_factory, tables) if e.type == ev.IMAGE_BUILT]
    assert len(built) == 2
    assert built[0].data.image == built[1].data.image
    assert built[0].data.layers == built[1].data.layers
