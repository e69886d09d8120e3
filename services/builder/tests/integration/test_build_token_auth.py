"""A registry that wants Bearer tokens (as Harbor and Docker Hub do): the builder
answers the challenge with its credentials, and is refused without them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlplane_builder.domain import BuildStatus
from mlplane_builder.store import BuilderTables
from mlplane_oci import OciClient
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import DistributionRegistry, TokenIssuer

from ..conftest import registered
from .builds import builder, deliver_to, run_until_finished, settings
from .conftest import UploadArtifact


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[DistributionRegistry, TokenIssuer]]:
    issuer = TokenIssuer(tmp_path, username="robot", password="robot-secret-1")
    registry = DistributionRegistry.start(auth=issuer.auth_config())
    try:
        yield registry, issuer
    finally:
        registry.stop()
        issuer.close()


async def test_build_pushes_with_bearer_tokens(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    token_registry: tuple[DistributionRegistry, TokenIssuer],
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    registry, issuer = token_registry
    artifact = await upload_artifact(os.urandom(20_000), "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=registry.url,
        registry_username="robot",
        registry_password="robot-secret-1",
        **s3_settings,
    )
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.SUCCEEDED, build.error
    assert issuer.requests
    assert all(user == "robot" for user, _ in issuer.requests)
    async with OciClient(registry.url, username="robot", password="robot-secret-1") as client:
        assert await client.manifest_digest(f"mlplane/{team}/fraud", "v1") == build.image_digest


async def test_wrong_credentials_fail_with_a_reason_naming_the_settings(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    token_registry: tuple[DistributionRegistry, TokenIssuer],
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    registry, _ = token_registry
    artifact = await upload_artifact(b"w", "model.onnx")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=registry.url,
        registry_username="robot",
        registry_password="not-the-password",
        **s3_settings,
    )
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "registry_denied"
    assert build.retryable is False
    assert "MLPLANE_BUILDER_REGISTRY_USERNAME" in (build.error or "")
    assert "not-the-password" not in (build.error or "")
