"""Builds that cannot finish: each ends in `image.build_failed` with a reason a person
can act on, retried first when the cause may pass (a registry that is down)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlplane_builder.domain import BuildStatus
from mlplane_builder.store import BuilderTables
from mlplane_contracts import events as ev
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import DistributionRegistry, OciRegistryEndpoint

from ..conftest import registered
from .builds import builder, deliver_to, outbox_events, run_until_finished, settings
from .conftest import UploadArtifact


async def test_registry_down_is_retried_then_build_failed(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    registry = DistributionRegistry.start()
    registry.stop()  # a registry that was there and is gone: connection refused
    artifact = await upload_artifact(os.urandom(10_000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=registry.url,
        registry_retry_attempts=3,
        build_attempts=2,
        **s3_settings,
    )
    async with builder(uow_factory, tables, config, tmp_path) as (runner, worker):
        build = await run_until_finished(worker)
        assert runner.target_client is not None
        retries = runner.target_client.stats.retries
    assert build.status is BuildStatus.FAILED
    assert build.attempts == 2
    # Each try retried its request twice (3 attempts) before giving up.
    assert retries == 2 * 2
    assert build.error_kind == "registry_unavailable"
    [event] = await outbox_events(uow_factory, tables)
    assert event.type == ev.IMAGE_BUILD_FAILED
    data = event.data
    assert isinstance(data, ev.ImageBuildFailed)
    assert data.retryable is True
    assert f"127.0.0.1:{registry.port}" in data.reason
    assert "did not answer" in data.reason


async def test_missing_artifact_fails_at_once_and_is_not_retryable(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(b"x", "model.onnx")
    missing = artifact.uri.replace("model.onnx", "gone.onnx")
    await deliver_to(
        uow_factory, tables, registered(team, uri=missing, sha256=artifact.sha256, size=1)
    )
    config = settings(registry_url=oci_registry.url, **s3_settings)
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.attempts == 1
    [event] = await outbox_events(uow_factory, tables)
    assert isinstance(event.data, ev.ImageBuildFailed)
    assert event.data.retryable is False
    assert missing in event.data.reason
    assert "does not exist" in event.data.reason


async def test_an_artifact_changed_after_registration_is_refused(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(os.urandom(5000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256="0" * 64, size=artifact.size),
    )
    config = settings(registry_url=oci_registry.url, **s3_settings)
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "artifact_mismatch"
    assert build.retryable is False
    assert artifact.sha256 in (build.error or "")


async def test_missing_base_image_names_the_setting(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    artifact = await upload_artifact(b"weights", "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    absent = f"{oci_registry.host}/mlplane-test/no-such-base@sha256:" + "0" * 64
    config = settings(registry_url=oci_registry.url, base_images={"sklearn": absent}, **s3_settings)
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "base_image_missing"
    assert build.retryable is False
    assert "MLPLANE_BUILDER_BASE_IMAGES" in (build.error or "")
    assert absent in (build.error or "")
