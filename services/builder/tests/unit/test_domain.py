"""The builder's domain: naming, image contents, a build's life, failure texts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from mlplane_builder.domain import (
    Build,
    BuildNotRebuildable,
    BuildOutcome,
    BuildRequest,
    BuildStatus,
    BuiltLayerInfo,
    FailureKind,
    artifact_file_name,
    failures,
    image_repository,
    image_spec,
    version_tag,
)
from mlplane_builder.domain.image_spec import LABEL_BUILD_KEY
from mlplane_builder.domain.naming import check_repository_template
from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE
from mlplane_runtime.errors import InvalidInput

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
REQUEST = BuildRequest(
    team="risk",
    model="fraud",
    version=7,
    framework="sklearn",
    artifact_uri="s3://models/teams/risk/fraud/abc/model.joblib",
    artifact_sha256="ab" * 32,
    artifact_size=1234,
    git_repository="https://git.example.com/risk/fraud",
    commit_sha="c" * 40,
    ci_run_url="https://ci.example.com/runs/42",
    registered_at=T0,
)


def build(status: BuildStatus = BuildStatus.RUNNING, attempts: int = 1) -> Build:
    return Build(
        id=1,
        request=REQUEST,
        status=status,
        attempts=attempts,
        created_at=T0,
        updated_at=T0,
        started_at=T0,
        lease_owner="w1",
        lease_expires_at=T0 + timedelta(minutes=1),
    )


class TestNaming:
    def test_repository_comes_from_the_template(self) -> None:
        assert image_repository("mlplane/{team}/{model}", "risk", "fraud") == "mlplane/risk/fraud"

    def test_tag_is_v_and_the_version(self) -> None:
        assert version_tag(12) == "v12"

    @pytest.mark.parametrize(
        "template", ["mlplane/{team}", "ml/{project}/{model}", "ML/{model}", "a//{model}"]
    )
    def test_bad_templates_are_refused(self, template: str) -> None:
        with pytest.raises(ValueError, match="repository template"):
            check_repository_template(template)

    def test_a_template_giving_a_bad_name_for_some_team_is_invalid_input(self) -> None:
        with pytest.raises(InvalidInput):
            image_repository("x/{team}/{model}", "Risk", "fraud")


class TestImageSpec:
    def test_model_path_env_and_labels_come_from_the_request(self) -> None:
        spec = image_spec(REQUEST, base_image=None, compression_level=1)
        assert spec.model_path == "/models/fraud/7/model.joblib"
        assert spec.env == {
            "MODEL_NAME": "fraud",
            "MODEL_VERSION": "7",
            "MODEL_PATH": "/models/fraud/7/model.joblib",
        }
        labels = spec.labels
        assert labels["org.opencontainers.image.source"] == REQUEST.git_repository
        assert labels["org.opencontainers.image.revision"] == REQUEST.commit_sha
        assert labels["org.opencontainers.image.created"] == "2026-11-01T12:00:00Z"
        assert labels["org.opencontainers.image.version"] == "7"
        assert labels["io.mlplane.ci-run"] == REQUEST.ci_run_url
        assert labels["io.mlplane.artifact-sha256"] == REQUEST.artifact_sha256
        assert "org.opencontainers.image.base.digest" not in labels

    def test_a_model_directory_is_the_version_s_directory(self) -> None:
        request = replace(
            REQUEST,
            artifact_uri="mlflow-artifacts:///1/models/m-1/artifacts",
            artifact_media_type=ARTIFACT_TREE_MEDIA_TYPE,
        )
        spec = image_spec(request, base_image=None, compression_level=1)
        assert request.artifact_is_directory
        assert spec.model_path == "/models/fraud/7"
        assert spec.env["MODEL_PATH"] == "/models/fraud/7"
        as_file = replace(request, artifact_media_type=None)
        assert image_spec(as_file, base_image=None, compression_level=1).model_path == (
            "/models/fraud/7/artifacts"
        )
        # Another layout, another build key: an image built as a file is never reused.
        assert (
            spec.labels[LABEL_BUILD_KEY]
            != image_spec(as_file, base_image=None, compression_level=1).labels[LABEL_BUILD_KEY]
        )

    def test_base_image_is_named_in_the_labels(self) -> None:
        base = "reg.example.com/serving/sklearn@sha256:" + "1" * 64
        labels = image_spec(REQUEST, base_image=base, compression_level=1).labels
        assert labels["org.opencontainers.image.base.name"] == "reg.example.com/serving/sklearn"
        assert labels["org.opencontainers.image.base.digest"] == "sha256:" + "1" * 64

    def test_same_request_gives_the_same_spec(self) -> None:
        first = image_spec(REQUEST, base_image=None, compression_level=1)
        assert image_spec(replace(REQUEST), base_image=None, compression_level=1) == first

    @pytest.mark.parametrize(
        "change",
        [
            {"artifact_sha256": "cd" * 32},
            {"commit_sha": "d" * 40},
            {"registered_at": T0 + timedelta(seconds=1)},
        ],
    )
    def test_build_key_changes_with_any_input(self, change: dict[str, object]) -> None:
        key = image_spec(REQUEST, base_image=None, compression_level=1).labels[LABEL_BUILD_KEY]
        other = image_spec(replace(REQUEST, **change), base_image=None, compression_level=1)  # type: ignore[arg-type]
        assert other.labels[LABEL_BUILD_KEY] != key

    def test_build_key_changes_with_compression_and_base(self) -> None:
        key = image_spec(REQUEST, base_image=None, compression_level=1).labels[LABEL_BUILD_KEY]
        assert (
            image_spec(REQUEST, base_image=None, compression_level=6).labels[LABEL_BUILD_KEY] != key
        )
        assert (
            image_spec(REQUEST, base_image="r.io/b@sha256:" + "2" * 64, compression_level=1).labels[
                LABEL_BUILD_KEY
            ]
            != key
        )

    @pytest.mark.parametrize(
        ("uri", "name"),
        [
            ("s3://b/k/model.onnx", "model.onnx"),
            ("file:///data/a%20b/weights.pt", "weights.pt"),
            ("s3://b/k/..hidden", "hidden"),
            ("s3://b/k/we ird$name", "we_ird_name"),
            ("s3://b/", "model"),
        ],
    )
    def test_artifact_file_names_are_safe(self, uri: str, name: str) -> None:
        assert artifact_file_name(uri) == name


class TestBuildLife:
    def test_success_records_the_image_and_ends_the_lease(self) -> None:
        outcome = BuildOutcome(
            repository="reg/x",
            digest="sha256:" + "e" * 64,
            tag="v7",
            base_image=None,
            layers=(BuiltLayerInfo("sha256:" + "f" * 64, 10, "m"),),
            bytes_uploaded=99,
        )
        done = build().succeeded(outcome, T0 + timedelta(seconds=3), note="scratch")
        assert done.status is BuildStatus.SUCCEEDED
        assert done.image_digest == outcome.digest
        assert done.image_size == 10
        assert done.lease_owner is None
        assert done.duration_s == 3.0
        assert done.note == "scratch"

    def test_retryable_failure_goes_back_to_pending_with_backoff(self) -> None:
        failure = failures.registry_unavailable("reg", "down")
        after = build(attempts=2).failed(failure, T0, max_attempts=3, retry_delay_s=10)
        assert after.status is BuildStatus.PENDING
        assert after.not_before == T0 + timedelta(seconds=20)
        assert after.retryable is True
        assert after.error_kind == "registry_unavailable"

    def test_retryable_failure_on_the_last_try_is_final(self) -> None:
        failure = failures.registry_unavailable("reg", "down")
        after = build(attempts=3).failed(failure, T0, max_attempts=3, retry_delay_s=10)
        assert after.status is BuildStatus.FAILED
        assert after.finished_at == T0
        assert after.retryable is True

    def test_non_retryable_failure_is_final_at_once(self) -> None:
        failure = failures.artifact_missing("s3://b/k")
        after = build(attempts=1).failed(failure, T0, max_attempts=3, retry_delay_s=10)
        assert after.status is BuildStatus.FAILED
        assert after.retryable is False

    def test_only_finished_builds_can_be_rebuilt(self) -> None:
        with pytest.raises(BuildNotRebuildable):
            build(BuildStatus.RUNNING).rebuild(T0)
        again = build(BuildStatus.FAILED, attempts=3).rebuild(T0)
        assert again.status is BuildStatus.PENDING
        assert again.attempts == 0


class TestFailures:
    @pytest.mark.parametrize(
        ("failure", "retryable"),
        [
            (failures.artifact_missing("s3://b/k"), False),
            (failures.base_image_missing("r/b@sha256:" + "0" * 64, "onnx"), False),
            (failures.registry_denied("r", "401"), False),
            (failures.registry_unavailable("r", "refused"), True),
            (failures.storage_unavailable("s3://b/k", "503"), True),
            (failures.timed_out(60), True),
            (failures.worker_lost(3), False),
        ],
    )
    def test_retryable_is_decided_by_kind(
        self, failure: failures.BuildFailure, retryable: bool
    ) -> None:
        assert failure.can_retry is retryable
        assert isinstance(failure.kind, FailureKind)

    def test_reasons_say_what_to_do(self) -> None:
        assert "MLPLANE_BUILDER_BASE_IMAGES" in failures.base_image_missing("r/b", "onnx").detail
        assert "MLPLANE_BUILDER_REGISTRY_USERNAME" in failures.registry_denied("r", "x").detail
        assert (
            "register a new version"
            in failures.artifact_mismatch(
                "s3://b/k", expected="1", actual="2", what="sha256"
            ).detail
        )
