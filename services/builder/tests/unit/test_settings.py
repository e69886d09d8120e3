"""The builder's settings: pinned base images, names, credentials, embedded defaults."""

from __future__ import annotations

import pytest
from mlplane_builder.settings import BuilderSettings
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import load_settings

PINNED = "harbor.example.com/serving/sklearn@sha256:" + "a" * 64


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MLPLANE_BUILDER_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_mode_with_a_scratch_base() -> None:
    settings = load_settings(BuilderSettings)
    assert settings.embedded
    assert settings.base_image_for("sklearn") is None


def test_base_images_parse_from_pairs_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_BUILDER_BASE_IMAGES", f"sklearn={PINNED}, default=scratch")
    settings = load_settings(BuilderSettings)
    assert settings.base_image_for("sklearn") == PINNED
    assert settings.base_image_for("onnx") is None
    monkeypatch.setenv("MLPLANE_BUILDER_BASE_IMAGES", f'{{"default": "{PINNED}"}}')
    assert load_settings(BuilderSettings).base_image_for("onnx") == PINNED


@pytest.mark.parametrize(
    "reference",
    [
        "harbor.example.com/serving/sklearn:1.5",
        "harbor.example.com/serving/sklearn",
        "harbor.example.com/serving/sklearn@sha256:abc",
    ],
)
def test_a_base_image_not_pinned_by_digest_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, reference: str
) -> None:
    monkeypatch.setenv("MLPLANE_BUILDER_BASE_IMAGES", f"sklearn={reference}")
    with pytest.raises(InvalidInput) as caught:
        load_settings(BuilderSettings)
    assert "MLPLANE_BUILDER_BASE_IMAGES" in caught.value.detail
    assert "pinned by digest" in caught.value.detail


def test_a_tag_before_the_digest_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = "127.0.0.1:5000/serving/sklearn:1.5@sha256:" + "b" * 64
    monkeypatch.setenv("MLPLANE_BUILDER_BASE_IMAGES", f"sklearn={reference}")
    assert load_settings(BuilderSettings).base_image_for("sklearn") == reference


def test_credentials_go_together_and_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_BUILDER_REGISTRY_URL", "https://harbor.example.com")
    monkeypatch.setenv("MLPLANE_BUILDER_REGISTRY_USERNAME", "robot$ml")
    with pytest.raises(InvalidInput):
        load_settings(BuilderSettings)
    monkeypatch.setenv("MLPLANE_BUILDER_REGISTRY_PASSWORD", "s3cr3t-value")
    settings = load_settings(BuilderSettings)
    assert "s3cr3t-value" not in repr(settings)
    assert settings.registry_host() == "harbor.example.com"


def test_registry_host_keeps_a_port_and_loopback_is_plain_http() -> None:
    settings = BuilderSettings(registry_url="http://127.0.0.1:5000")  # type: ignore[arg-type]
    assert settings.registry_host() == "127.0.0.1:5000"
    assert settings.registry_scheme("127.0.0.1:5000") == "http"
    assert settings.registry_scheme("harbor.example.com") == "https"
    insecure = BuilderSettings(insecure_registries="mirror.lan:5000")  # type: ignore[arg-type]
    assert insecure.registry_scheme("mirror.lan:5000") == "http"


def test_a_bad_repository_template_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_BUILDER_REPOSITORY_TEMPLATE", "ml/{project}")
    with pytest.raises(InvalidInput) as caught:
        load_settings(BuilderSettings)
    assert "MLPLANE_BUILDER_REPOSITORY_TEMPLATE" in caught.value.detail


def test_a_base_image_for_an_unknown_framework_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_BUILDER_BASE_IMAGES", f"sklearnn={PINNED}")
    with pytest.raises(InvalidInput) as caught:
        load_settings(BuilderSettings)
    assert "not a framework" in caught.value.detail


def test_tracking_locations_must_be_mlflow_artifact_prefixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS", '{"fraud": ["mlflow-artifacts:/1/../2/"]}'
    )
    with pytest.raises(InvalidInput) as caught:
        load_settings(BuilderSettings)
    assert "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS" in caught.value.detail
    monkeypatch.setenv(
        "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS",
        '{"fraud": ["mlflow-artifacts:/", "mlflow-artifacts:/1/models/"]}',
    )
    monkeypatch.setenv("MLPLANE_BUILDER_MLFLOW_TRACKING_TOKEN", "tracking-secret")
    settings = load_settings(BuilderSettings)
    assert settings.mlflow_tracking_locations["fraud"][1] == "mlflow-artifacts:/1/models/"
    assert "tracking-secret" not in repr(settings)
