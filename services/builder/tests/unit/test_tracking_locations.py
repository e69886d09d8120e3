"""Which artifacts of the tracking server a team's builds may read: the pure rule, and
the artifact source applying it before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlplane_builder.artifact_source import ArtifactSource
from mlplane_builder.domain.tracking_locations import (
    tracking_allows,
    tracking_location_prefix,
    tracking_path,
)


@pytest.mark.parametrize(
    ("location", "prefix"),
    [
        ("mlflow-artifacts:/", ""),
        ("mlflow-artifacts:/1/", "1/"),
        ("mlflow-artifacts:/1/models/", "1/models/"),
        ("mlflow-artifacts:/1", None),
        ("mlflow-artifacts://host/", None),
        ("mlflow-artifacts:/1/../", None),
        ("mlflow-artifacts:/1//", None),
        ("s3://bucket/", None),
    ],
)
def test_a_location_is_a_clean_prefix_ending_with_a_slash(
    location: str, prefix: str | None
) -> None:
    assert tracking_location_prefix(location) == prefix


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("mlflow-artifacts:/1/models/m-1/artifacts", "1/models/m-1/artifacts"),
        ("mlflow-artifacts:///1/models/m-1/artifacts", "1/models/m-1/artifacts"),
        ("mlflow-artifacts:///1/models/m-1/artifacts/", "1/models/m-1/artifacts"),
        ("mlflow-artifacts://other-server/1/models", None),
        ("mlflow-artifacts:////1/models", None),
        ("mlflow-artifacts:///1/../2", None),
        ("mlflow-artifacts:///1/%2e%2e/2", None),
        ("mlflow-artifacts:///1/x?y=1", None),
        ("mlflow-artifacts:///", None),
        ("runs:/abc/model", None),
    ],
)
def test_an_artifact_uri_is_read_strictly(uri: str, path: str | None) -> None:
    assert tracking_path(uri) == path


def test_a_prefix_is_a_path_prefix_not_a_string_prefix() -> None:
    assert tracking_allows("mlflow-artifacts:///1/models/m", ["mlflow-artifacts:/1/"])
    assert not tracking_allows("mlflow-artifacts:///10/models/m", ["mlflow-artifacts:/1/"])
    assert not tracking_allows("mlflow-artifacts:///1/", ["mlflow-artifacts:/1/"])
    assert tracking_allows("mlflow-artifacts:///10/m", ["mlflow-artifacts:/"])
    assert not tracking_allows("mlflow-artifacts:///10/m", [])


def source(tmp_path: Path, **tracking: object) -> ArtifactSource:
    return ArtifactSource(local_root=tmp_path, **tracking)  # type: ignore[arg-type]


def test_a_team_reads_only_under_its_own_tracking_locations(tmp_path: Path) -> None:
    artifacts = source(
        tmp_path,
        tracking_uri="http://mlflow.example.com",
        tracking_locations={"fraud": ["mlflow-artifacts:/1/"], "risk": ["mlflow-artifacts:/"]},
    )
    uri = "mlflow-artifacts:///1/models/m-1/artifacts"
    assert artifacts.allows(uri, team="fraud", model="any")
    assert artifacts.allows(uri, team="risk", model="any")
    assert not artifacts.allows("mlflow-artifacts:///2/models/m-2", team="fraud", model="any")
    assert not artifacts.allows(uri, team="churn", model="any")


def test_without_a_tracking_server_nothing_of_it_is_read(tmp_path: Path) -> None:
    artifacts = source(tmp_path, tracking_locations={"fraud": ["mlflow-artifacts:/"]})
    assert not artifacts.allows("mlflow-artifacts:///1/m", team="fraud", model="any")
