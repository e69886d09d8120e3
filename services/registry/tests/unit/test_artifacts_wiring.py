"""The registry's artifact settings and store wiring, without any server."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mlplane_registry.artifacts import ArtifactNotFound
from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_registry.artifacts.wiring import RegistryArtifacts
from mlplane_registry.settings import RegistrySettings
from mlplane_runtime.errors import InvalidInput, Unavailable
from mlplane_runtime.service import ServiceContext
from mlplane_runtime.settings import RuntimeSettings, load_settings


def context(tmp_path: Path, **runtime: Any) -> ServiceContext:
    settings = RuntimeSettings(database_url=None, amqp_url=None, **runtime)
    return cast(
        ServiceContext, SimpleNamespace(name="registry", settings=settings, data_dir=tmp_path)
    )


@pytest.fixture(autouse=True)
def no_registry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("MLPLANE_REGISTRY_"):
            monkeypatch.delenv(variable)


def test_bad_settings_name_each_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_ENDPOINT_URL", "not a url")
    monkeypatch.setenv("MLPLANE_REGISTRY_UPLOAD_PART_SIZE", "5")
    with pytest.raises(InvalidInput) as caught:
        load_settings(RegistrySettings)
    assert "MLPLANE_REGISTRY_S3_ENDPOINT_URL" in caught.value.detail
    assert "MLPLANE_REGISTRY_UPLOAD_PART_SIZE" in caught.value.detail


def test_an_endpoint_needs_both_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_ENDPOINT_URL", "http://s3:8333")
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_ACCESS_KEY", "key")
    with pytest.raises(InvalidInput, match="MLPLANE_REGISTRY_S3_SECRET_KEY"):
        load_settings(RegistrySettings)


def test_s3_settings_build_an_s3_store_and_keep_the_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_ENDPOINT_URL", "http://s3:8333")
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_ACCESS_KEY", "key")
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_SECRET_KEY", "top-secret")
    monkeypatch.setenv("MLPLANE_REGISTRY_S3_BUCKET", "models")
    settings = load_settings(RegistrySettings)
    assert "top-secret" not in repr(settings)
    artifacts = RegistryArtifacts(settings, context(tmp_path))
    assert isinstance(artifacts.store, S3ArtifactStore)
    assert artifacts.store.endpoint_url == "http://s3:8333"
    assert artifacts.local is None
    with pytest.raises(Unavailable):  # not started: no client before the lifespan
        artifacts.started()
    # The registry's part of the platform's bucket: its prefix, `registry/` by default.
    assert artifacts.key_of("s3://models/registry/teams/a/models/m/x/model.onnx") == (
        "teams/a/models/m/x/model.onnx"
    )
    for elsewhere in (
        "s3://elsewhere/registry/teams/a/models/m/x/model.onnx",
        "s3://models/drift/teams/a/models/m/x/model.onnx",  # another service's part
        "s3://models/teams/a/models/m/x/model.onnx",
    ):
        with pytest.raises(ArtifactNotFound):
            artifacts.key_of(elsewhere)


def test_without_s3_artifacts_live_on_disk_behind_the_platform_url(tmp_path: Path) -> None:
    artifacts = RegistryArtifacts(
        RegistrySettings(), context(tmp_path, http_host="10.0.0.5", http_port=9000)
    )
    store = artifacts.started()
    assert isinstance(store, LocalDiskArtifactStore)
    assert store.base_url == "http://10.0.0.5:9000/registry"
    assert store.root == tmp_path / "artifacts"
    key = "teams/a/models/m/x/model=1+2@3,4.onnx"
    assert artifacts.key_of(store.uri(key)) == key
    with pytest.raises(ArtifactNotFound):
        artifacts.key_of("s3://models/teams/a/models/m/x/model.onnx")


def test_a_public_url_overrides_the_local_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLPLANE_REGISTRY_LOCAL_PUBLIC_URL", "https://mlplane.example.com/registry")
    artifacts = RegistryArtifacts(load_settings(RegistrySettings), context(tmp_path))
    assert isinstance(artifacts.local, LocalDiskArtifactStore)
    assert artifacts.local.base_url == "https://mlplane.example.com/registry"
