"""mlplane_registry.mlflow.paging: as MLflow's registry maps onto mlplane's."""

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
from mlplane_registry.mlflow import errors, paging

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


def test_page_tokens_of_model_search_round_trip_and_bad_ones_are_refused() -> None:
    assert paging.decode_offset(None) == 0
    assert paging.decode_offset(paging.encode_offset(200)) == 200
    for token in ["nope", paging.encode_offset(-1), "e30="]:
        with pytest.raises(errors.MlflowError, match="page_token"):
            paging.decode_offset(token)
