"""Payload models are strict: what the design promises is what they accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from mlplane_contracts import (
    CI_RUN_COMPLETED,
    DEPLOYMENT_REQUESTED,
    DEPLOYMENT_STATUS_CHANGED,
    DRIFT_DETECTED,
    IMAGE_BUILD_FAILED,
    IMAGE_BUILD_STARTED,
    IMAGE_BUILT,
    IMAGE_SCANNED,
    MODEL_ALIAS_CHANGED,
    MODEL_VERSION_REGISTERED,
    SCHEMA_BASE_URI,
    CloudEvent,
    ImageReference,
    ModelArtifact,
    ModelVersionRegistered,
    new_event,
)
from mlplane_contracts.events import PLATFORM_PAYLOADS
from mlplane_contracts.examples import ARTIFACT, IMAGE, PAYLOADS, example_payload
from pydantic import ValidationError

DESIGN_TYPES = [
    "io.mlplane.ci.run.completed.v1",
    "io.mlplane.model.version.registered.v1",
    "io.mlplane.model.alias.changed.v1",
    # Not in DESIGN.md's table (see ImageBuildStarted): what moves a version to `building`.
    "io.mlplane.image.build_started.v1",
    "io.mlplane.image.built.v1",
    "io.mlplane.image.build_failed.v1",
    "io.mlplane.image.scanned.v1",
    "io.mlplane.deployment.requested.v1",
    "io.mlplane.deployment.status_changed.v1",
    "io.mlplane.drift.detected.v1",
]
HEX64 = "a" * 64


def _registered(**changes: object) -> dict[str, object]:
    fields = example_payload(MODEL_VERSION_REGISTERED).model_dump()
    fields.update(changes)
    return fields


def _error_of(fields: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as caught:
        ModelVersionRegistered.model_validate(fields)
    return str(caught.value)


class TestRegistry:
    def test_every_type_in_the_design_table_has_a_payload_model(self) -> None:
        assert sorted(PLATFORM_PAYLOADS) == sorted(DESIGN_TYPES)

    def test_type_constants_name_the_registered_types(self) -> None:
        constants = [
            CI_RUN_COMPLETED,
            MODEL_VERSION_REGISTERED,
            MODEL_ALIAS_CHANGED,
            IMAGE_BUILD_STARTED,
            IMAGE_BUILT,
            IMAGE_BUILD_FAILED,
            IMAGE_SCANNED,
            DEPLOYMENT_REQUESTED,
            DEPLOYMENT_STATUS_CHANGED,
            DRIFT_DETECTED,
        ]
        assert constants == DESIGN_TYPES
        for constant in constants:
            assert PLATFORM_PAYLOADS[constant].event_type == constant

    def test_each_payload_points_at_its_published_schema(self) -> None:
        for event_type, model in PLATFORM_PAYLOADS.items():
            assert model.dataschema() == f"{SCHEMA_BASE_URI}/{event_type}.json"

    def test_new_event_takes_type_and_dataschema_from_the_payload(self) -> None:
        payload = example_payload(IMAGE_SCANNED)
        event = new_event(payload, source="/mlplane/scanner", subject="images/x", sequence=4)
        assert event.type == IMAGE_SCANNED
        assert event.dataschema == payload.dataschema()
        assert event.data is payload
        assert event.sequence == 4

    def test_examples_cover_every_type_and_are_valid(self) -> None:
        assert [payload.event_type for payload in PAYLOADS] == DESIGN_TYPES
        for payload in PAYLOADS:
            assert type(payload).model_validate(payload.model_dump()) == payload


class TestStrictFields:
    @pytest.mark.parametrize(
        "digest",
        [
            "sha256:" + "A" * 64,
            "sha256:" + "a" * 63,
            "sha256:" + "a" * 65,
            "sha512:" + "a" * 64,
            "a" * 64,
            "sha256:" + "a" * 64 + "\n",
        ],
    )
    def test_image_digest_must_be_sha256_with_64_lowercase_hex(self, digest: str) -> None:
        with pytest.raises(ValidationError, match="digest"):
            ImageReference(repository="harbor.acme.io/ml/fraud", digest=digest)

    def test_image_reference_by_digest_is_repository_at_digest(self) -> None:
        assert IMAGE.reference == f"{IMAGE.repository}@{IMAGE.digest}"

    @pytest.mark.parametrize(
        "repository", ["harbor.acme.io/ml/Fraud", "ml/fraud:latest", "ml//fraud", "", "ml/fraud@x"]
    )
    def test_image_repository_must_be_an_oci_name_without_tag(self, repository: str) -> None:
        with pytest.raises(ValidationError, match="repository"):
            ImageReference(repository=repository, digest="sha256:" + HEX64)

    @pytest.mark.parametrize(
        "name", ["Fraud", "-fraud", "fraud-", "fr_aud", "fraud.v2", "", "a" * 64]
    )
    def test_model_and_team_names_must_be_dns_labels(self, name: str) -> None:
        assert "model" in _error_of(_registered(model=name))
        assert "team" in _error_of(_registered(team=name))

    def test_a_63_character_dns_label_is_accepted(self) -> None:
        name = "a" + "-" * 61 + "b"
        assert ModelVersionRegistered.model_validate(_registered(model=name)).model == name

    def test_artifact_sha256_must_be_64_lowercase_hex(self) -> None:
        artifact = {**ARTIFACT.model_dump(), "sha256": "F" * 64}
        assert "artifact.sha256" in _error_of(_registered(artifact=artifact))

    def test_naive_timestamps_are_rejected(self) -> None:
        message = _error_of(_registered(registered_at=datetime(2025, 1, 1, 12, 0)))
        assert "registered_at" in message
        assert "timezone" in message

    def test_timestamps_are_normalized_to_utc(self) -> None:
        local = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        payload = ModelVersionRegistered.model_validate(_registered(registered_at=local))
        assert payload.registered_at.tzinfo is UTC
        assert payload.registered_at == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def test_unknown_fields_are_rejected_in_payloads_and_parts(self) -> None:
        assert "extra" in _error_of(_registered(note="x")).lower()
        artifact = {**ARTIFACT.model_dump(), "note": "x"}
        assert "artifact.note" in _error_of(_registered(artifact=artifact))

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_metrics_must_be_finite(self, value: float) -> None:
        lineage = {
            **example_payload(MODEL_VERSION_REGISTERED).lineage.model_dump(),
            "metrics": {"auc": value},
        }
        assert "lineage.metrics.auc" in _error_of(_registered(lineage=lineage))

    def test_version_numbers_count_from_one(self) -> None:
        assert "version" in _error_of(_registered(version=0))

    def test_enums_reject_unknown_values(self) -> None:
        artifact = {**ARTIFACT.model_dump(), "framework": "caffe"}
        assert "artifact.framework" in _error_of(_registered(artifact=artifact))
        with pytest.raises(ValidationError, match="environment"):
            type(example_payload(DEPLOYMENT_REQUESTED)).model_validate(
                {**example_payload(DEPLOYMENT_REQUESTED).model_dump(), "environment": "qa"}
            )

    def test_scan_verdict_and_deployment_phase_are_enums(self) -> None:
        scanned = example_payload(IMAGE_SCANNED).model_dump()
        with pytest.raises(ValidationError, match="verdict"):
            type(example_payload(IMAGE_SCANNED)).model_validate({**scanned, "verdict": "ok"})
        changed = example_payload(DEPLOYMENT_STATUS_CHANGED).model_dump()
        with pytest.raises(ValidationError, match="phase"):
            type(example_payload(DEPLOYMENT_STATUS_CHANGED)).model_validate(
                {**changed, "phase": "done"}
            )

    def test_drift_share_is_a_fraction(self) -> None:
        drift = example_payload(DRIFT_DETECTED).model_dump()
        with pytest.raises(ValidationError, match="drift_share"):
            type(example_payload(DRIFT_DETECTED)).model_validate({**drift, "drift_share": 1.5})

    def test_a_built_image_has_at_least_one_layer(self) -> None:
        built = example_payload(IMAGE_BUILT).model_dump()
        with pytest.raises(ValidationError, match="layers"):
            type(example_payload(IMAGE_BUILT)).model_validate({**built, "layers": []})

    def test_payloads_are_immutable(self) -> None:
        with pytest.raises(ValidationError, match="frozen"):
            ARTIFACT.size_bytes = 1  # type: ignore[misc]
        assert isinstance(ARTIFACT, ModelArtifact)


class TestEnvelope:
    def test_event_time_is_normalized_to_utc(self) -> None:
        local = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        event = new_event(example_payload(IMAGE_BUILT), source="/mlplane/builder")
        moved = event.model_copy(update={"time": local})
        revalidated = CloudEvent.model_validate(moved.model_dump())
        assert revalidated.time.tzinfo is UTC
        assert revalidated.time == local

    def test_sequence_fits_a_signed_64_bit_integer(self) -> None:
        fields = new_event(example_payload(IMAGE_BUILT), source="/s").model_dump()
        with pytest.raises(ValidationError, match="sequence"):
            CloudEvent.model_validate({**fields, "sequence": 2**63})
        with pytest.raises(ValidationError, match="sequence"):
            CloudEvent.model_validate({**fields, "sequence": -1})
