"""mlplane_registry.mlflow.tags: as MLflow's registry maps onto mlplane's."""

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
from mlplane_registry.mlflow import errors, tags

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


# -- errors -------------------------------------------------------------------------------


def test_tags_mlplane_cannot_store_or_announce_are_refused() -> None:
    assert tags.check_tag("team.owner", "risk") == ("team.owner", "risk")
    for key in ["has space", ".dot-first", "mlplane.mlflow.description", "mlplane.anything"]:
        with pytest.raises(errors.MlflowError):
            tags.check_tag(key, "v")
    with pytest.raises(errors.MlflowError, match="longer than"):
        tags.check_tag("k", "v" * 6001)
    with pytest.raises(errors.MlflowError, match="reserved"):
        tags.check_tag_key_deletable(tags.RUN_ID_TAG)


def test_a_description_lives_in_a_hidden_tag() -> None:
    described = tags.with_description({"k": "v"}, "new")
    assert described == {"k": "v", tags.DESCRIPTION_TAG: "new"}
    assert tags.with_description(described, "") == {"k": "v"}
    assert tags.tags_json(described) == [{"key": "k", "value": "v"}]


# -- new versions -------------------------------------------------------------------------
