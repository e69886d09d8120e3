"""Base images as registries serve them: an index narrowed to linux/amd64, and a base
in another registry, whose layers are copied (streamed) since they cannot be mounted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlplane_builder.domain import BuildStatus
from mlplane_builder.store import BuilderTables
from mlplane_oci import OciClient
from mlplane_oci.media_types import OCI_INDEX, OCI_MANIFEST
from mlplane_oci.reference import ImageReference
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import (
    DistributionRegistry,
    OciRegistryEndpoint,
    unique_repository,
)

from ..conftest import registered
from .builds import builder, deliver_to, run_until_finished, settings
from .conftest import UploadArtifact
from .images import push_base_image


async def test_an_index_base_is_built_on_its_linux_amd64_manifest(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    base = ImageReference.parse(base_image)
    async with OciClient(oci_registry.url) as client:
        amd64 = await client.get_manifest(base.repository, base.reference)
        # An arm64 entry first: the builder must pick by platform, not by position.
        other = unique_repository("arm")
        arm64_digest = await push_base_image(client, other, flavour=b"# arm64\n")
        arm64 = await client.get_manifest(other, arm64_digest)
        assert arm64.digest != amd64.digest
        for layer in json.loads(arm64.content)["layers"] + [json.loads(arm64.content)["config"]]:
            await client.mount_blob(base.repository, layer["digest"], other)
        await client.put_manifest(base.repository, arm64.digest, arm64.content, OCI_MANIFEST)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": arm64.digest,
                        "size": len(arm64.content),
                        "platform": {"os": "linux", "architecture": "arm64"},
                    },
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": amd64.digest,
                        "size": len(amd64.content),
                        "platform": {"os": "linux", "architecture": "amd64"},
                    },
                ],
            }
        ).encode()
        index_digest = await client.put_manifest(base.repository, "multi", index, OCI_INDEX)
    artifact = await upload_artifact(os.urandom(1000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    configured = f"{base.registry}/{base.repository}@{index_digest}"
    config = settings(
        registry_url=oci_registry.url, base_images={"sklearn": configured}, **s3_settings
    )
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.SUCCEEDED, build.error
    # The build names the platform manifest it used, not the index.
    assert build.base_image == f"{base.registry}/{base.repository}@{amd64.digest}"
    assert build.layers[0].digest == json.loads(amd64.content)["layers"][0]["digest"]


@pytest.fixture
def other_registry() -> Iterator[DistributionRegistry]:
    registry = DistributionRegistry.start()
    try:
        yield registry
    finally:
        registry.stop()


async def test_a_base_in_another_registry_is_copied_as_a_stream(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    other_registry: DistributionRegistry,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    repository = unique_repository("far")
    async with OciClient(other_registry.url) as client:
        digest = await push_base_image(client, repository)
    far_base = f"{other_registry.endpoint.host}/{repository}@{digest}"
    artifact = await upload_artifact(os.urandom(1000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=oci_registry.url, base_images={"default": far_base}, **s3_settings
    )
    async with builder(uow_factory, tables, config, tmp_path) as (runner, worker):
        build = await run_until_finished(worker)
        assert runner.target_client is not None
        stats = runner.target_client.stats
    assert build.status is BuildStatus.SUCCEEDED, build.error
    assert stats.total("mount") == 0  # another registry: nothing to mount from
    assert stats.blobs_uploaded == 4  # two base layers, the model layer, the config
    assert build.base_image == far_base
