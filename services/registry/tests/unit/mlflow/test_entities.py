"""mlplane_registry.mlflow.entities: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_registry.domain import (
    Artifact,
    Lifecycle,
    Lineage,
    Model,
    ModelVersion,
)
from mlplane_registry.mlflow import entities, errors, tags

T0 = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)
SHA = "a" * 64
COMMIT = "b" * 40
INPUTS = [
    ("mlplane.sha256", SHA),
    ("mlplane.size_bytes", "1234"),
    ("mlplane.git_repository", "https://git.example.com/ml/fraud"),
    ("mlplane.commit_sha", COMMIT),
]


def version(number: int = 1, **tags: str) -> ModelVersion:
    return ModelVersion(
        id=number,
        model_id=1,
        team="risk",
        model="fraud",
        version=number,
        framework="sklearn",
        artifact=Artifact("s3://models/fraud/1/model.pkl", 10, SHA),
        lineage=Lineage("https://git.example.com/ml/fraud", COMMIT, "https://ci.example.com/1"),
        signature=None,
        tags=dict(tags),
        status_message=None,
        lifecycle=Lifecycle(),
        aliases=("champion", "b-side"),
        registered_by="user:ana",
        created_at=T0,
        updated_at=T0,
        etag="e",
    )


def model() -> Model:
    return Model(1, "risk", "fraud", "detects fraud", {"owner": "risk"}, T0, T0, "e")


def test_a_version_as_mlflow_sees_it() -> None:
    found = entities.model_version_json(
        version(3, team="a", **{tags.DESCRIPTION_TAG: "better recall", tags.RUN_ID_TAG: "run-1"})
    )
    assert found == {
        "name": "fraud",
        "version": "3",
        "creation_timestamp": 1_793_534_400_123,
        "last_updated_timestamp": 1_793_534_400_123,
        "user_id": "user:ana",
        "current_stage": "None",
        "description": "better recall",
        "source": "s3://models/fraud/1/model.pkl",
        "run_id": "run-1",
        "model_id": "",
        "run_link": "https://ci.example.com/1",
        "status": "READY",
        "status_message": "",
        "tags": [{"key": "team", "value": "a"}],  # mlplane's hidden tags are not shown
        "aliases": ["b-side", "champion"],
    }


def test_a_registered_model_carries_aliases_and_latest_version_when_given_its_versions() -> None:
    bare = entities.registered_model_json(model())
    assert bare["tags"] == [{"key": "owner", "value": "risk"}]
    assert "aliases" not in bare
    assert "latest_versions" not in bare
    full = entities.registered_model_json(model(), [version(1), version(2)])
    assert {"alias": "champion", "version": "2"} in full["aliases"]
    assert [v["version"] for v in full["latest_versions"]] == ["2"]
    assert entities.registered_model_json(model(), [])["latest_versions"] == []


def test_latest_versions_are_all_in_stage_none() -> None:
    latest = version(4)
    assert entities.latest_for_stages([], latest) == [latest]
    assert entities.latest_for_stages(["None", "Production"], latest) == [latest]
    assert entities.latest_for_stages(["Production"], latest) == []
    assert entities.latest_for_stages([], None) == []
    with pytest.raises(errors.MlflowError, match="Invalid Model Version stage: gold"):
        entities.latest_for_stages(["gold"], latest)


def test_a_new_version_takes_artifact_and_lineage_from_mlplane_tags() -> None:
    new = entities.new_version(
        source="s3://models/fraud/7/model.onnx",
        run_id="abc123",
        run_link="https://ci.example.com/runs/7",
        description="first",
        tags=[*INPUTS, ("mlplane.framework", "onnx"), ("mlplane.git_ref", "main"), ("k", "v")],
    )
    assert new.framework == "onnx"
    assert new.artifact == Artifact("s3://models/fraud/7/model.onnx", 1234, SHA, None)
    assert new.lineage() == Lineage(
        "https://git.example.com/ml/fraud", COMMIT, "https://ci.example.com/runs/7", "main"
    )
    assert new.lineage().attested
    assert new.tags == {
        "k": "v",
        tags.DESCRIPTION_TAG: "first",
        tags.RUN_ID_TAG: "abc123",
        tags.SOURCE_TAG: "s3://models/fraud/7/model.onnx",
    }


def test_the_ci_run_url_tag_stands_in_for_run_link_and_framework_defaults_to_custom() -> None:
    new = entities.new_version(
        source="file:///srv/models/fraud",
        run_id=None,
        run_link=None,
        description=None,
        tags=[*INPUTS, ("mlplane.ci_run_url", "https://ci.example.com/9")],
    )
    assert new.lineage().ci_run_url == "https://ci.example.com/9"
    assert new.framework == "custom"
    assert new.tags == {tags.SOURCE_TAG: "file:///srv/models/fraud"}


def test_a_bare_source_is_a_version_the_registry_reads_itself() -> None:
    new = entities.new_version(
        source="runs:/abc/model", run_id="abc", run_link=None, description=None, tags=[]
    )
    assert new.artifact is None
    assert not new.lineage().attested
    assert new.run_id == "abc"


def test_malformed_mlplane_tags_are_refused_naming_all_of_them() -> None:
    with pytest.raises(errors.MlflowError) as refused:
        entities.new_version(
            source="runs:/abc/model",
            run_id="abc",
            run_link=None,
            description=None,
            tags=[
                ("mlplane.sha256", "XYZ"),
                ("mlplane.commit_sha", "main"),
                ("mlplane.framework", "caffe"),
                ("bad key", "v"),
            ],
        )
    message = refused.value.message
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    for expected in [
        "Tag 'mlplane.sha256' = 'XYZ' is not",
        "Tag 'mlplane.commit_sha' = 'main' is not",
        "'mlplane.framework' = 'caffe' is not one of",
        "Tag key 'bad key'",
    ]:
        assert expected in message


def test_sha256_and_size_go_together() -> None:
    with pytest.raises(errors.MlflowError, match="go together"):
        entities.new_version(
            source="s3://models/x",
            run_id=None,
            run_link=None,
            description=None,
            tags=[("mlplane.sha256", SHA)],
        )
