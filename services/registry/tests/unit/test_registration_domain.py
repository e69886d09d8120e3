"""mlplane_registry.domain.registration: sources, directory digests, lineage. Pure."""

from __future__ import annotations

import pytest
from mlplane_registry.domain import TeamArtifactLocations
from mlplane_registry.domain.artifacts import TrackingLocation
from mlplane_registry.domain.registration import (
    LocationUri,
    LoggedModel,
    RegisteredVersion,
    RunArtifacts,
    RunFacts,
    SourceRefused,
    https_repository,
    lineage_of,
    parse_source,
)

COMMIT = "a" * 40
TAGS = {
    "repository_tag": "mlplane.git_repository",
    "commit_tag": "mlplane.commit_sha",
    "ci_run_tag": "mlplane.ci_run_url",
    "ref_tag": "mlplane.git_ref",
}


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("s3://b/k/model.pkl", LocationUri("s3://b/k/model.pkl")),
        (
            "mlflow-artifacts:/1/models/m-1/artifacts",
            LocationUri("mlflow-artifacts:/1/models/m-1/artifacts"),
        ),
        ("runs:/abc123/model", RunArtifacts("abc123", "model")),
        ("runs:/abc123", RunArtifacts("abc123", "")),
        ("models:/m-0a1b2c", LoggedModel("m-0a1b2c")),
        ("models:/fraud/3", RegisteredVersion("fraud", version=3)),
        ("models:/fraud@champion", RegisteredVersion("fraud", alias="champion")),
    ],
)
def test_the_sources_mlflow_sends(text: str, parsed: object) -> None:
    assert parse_source(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "/home/me/model",
        "model.pkl",
        "http://example.com/model",
        "runs:/abc/../../etc",
        "mlflow-artifacts://other-host/1/x",
        "mlflow-artifacts:/1/../x",
        "models:/fraud/latest",
        "models:/fraud/0",
    ],
)
def test_other_sources_are_refused(text: str) -> None:
    with pytest.raises(SourceRefused):
        parse_source(text)


def test_lineage_prefers_what_was_given_then_the_run() -> None:
    run = RunFacts(
        {
            "mlflow.source.git.commit": "b" * 40,
            "mlflow.source.git.repoURL": "git@github.com:acme/fraud.git",
        },
        "http://mlflow:5000/#/experiments/1/runs/r",
    )
    from_run = lineage_of({}, None, run, **TAGS)
    assert (from_run.git_repository, from_run.commit_sha, from_run.ci_run_url) == (
        "https://github.com/acme/fraud",
        "b" * 40,
        "http://mlflow:5000/#/experiments/1/runs/r",
    )
    assert from_run.attested
    given = lineage_of(
        {"mlplane.commit_sha": COMMIT, "mlplane.git_repository": "https://git.example.com/x"},
        "https://ci.example.com/1",
        run,
        **TAGS,
    )
    assert (given.commit_sha, given.git_repository, given.ci_run_url) == (
        COMMIT,
        "https://git.example.com/x",
        "https://ci.example.com/1",
    )
    nothing = lineage_of({}, None, RunFacts({"mlflow.source.git.commit": "not-a-sha"}), **TAGS)
    assert not nothing.attested
    assert nothing.commit_sha == ""


def test_git_remotes_as_https() -> None:
    assert https_repository("https://github.com/a/b.git") == "https://github.com/a/b"
    assert https_repository("git@gitlab.com:g/p.git") == "https://gitlab.com/g/p"
    assert https_repository("https://user:pw@github.com/a/b") is None  # never a credential
    assert https_repository("/srv/repo") is None


def test_tracking_locations_hold_their_paths_only() -> None:
    everything = TrackingLocation.parse("mlflow-artifacts:/")
    assert everything.holds("mlflow-artifacts:/1/models/m-1/artifacts")
    assert not everything.holds("mlflow-artifacts:/1/../x")
    assert not everything.holds("s3://b/x")
    fraud = TrackingLocation.parse("mlflow-artifacts:/7/")
    assert fraud.holds("mlflow-artifacts:/7/abc/artifacts/model")
    assert not fraud.holds("mlflow-artifacts:/70/abc")
    for bad in ("mlflow-artifacts:/7", "mlflow-artifacts://h/", "mlflow-artifacts:/../"):
        with pytest.raises(ValueError, match="must be"):
            TrackingLocation.parse(bad)
    locations = TeamArtifactLocations.parse({"fraud": ["s3://mlb/fraud/", "mlflow-artifacts:/7/"]})
    assert locations.allows("fraud", "mlflow-artifacts:/7/run/artifacts/model")
    assert not locations.allows("other", "mlflow-artifacts:/7/run/artifacts/model")
