"""The drift service's settings fail fast at start-up, naming the variable."""

from __future__ import annotations

import pytest
from mlplane_drift.settings import DriftSettings
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import load_settings


def test_defaults_close_windows_by_count_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WINDOW_COUNT", "WINDOW_SECONDS", "S3_ENDPOINT_URL", "TEAM_DATA_LOCATIONS"):
        monkeypatch.delenv(f"MLPLANE_DRIFT_{name}", raising=False)
    settings = load_settings(DriftSettings)
    assert (settings.window_count, settings.window_seconds) == (1000, 3600.0)
    assert settings.reference_from_samples == 0
    assert settings.data_locations("risk") == ("s3://mlplane/drift/teams/risk/",)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"MLPLANE_DRIFT_WINDOW_COUNT": "-1"}, "MLPLANE_DRIFT_WINDOW_COUNT"),
        ({"MLPLANE_DRIFT_DRIFT_SHARE": "1.5"}, "MLPLANE_DRIFT_DRIFT_SHARE"),
        ({"MLPLANE_DRIFT_S3_ENDPOINT_URL": "http://s3:9000"}, "MLPLANE_DRIFT_S3_ACCESS_KEY"),
        (
            {"MLPLANE_DRIFT_TEAM_DATA_LOCATIONS": '{"risk": ["https://x/y"]}'},
            "MLPLANE_DRIFT_TEAM_DATA_LOCATIONS",
        ),
        ({"MLPLANE_DRIFT_MAX_BATCH_SAMPLES": "20000"}, "MLPLANE_DRIFT_MAX_BATCH_SAMPLES"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput, match=named):
        load_settings(DriftSettings)


def test_windows_that_never_close_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_DRIFT_WINDOW_COUNT", "0")
    monkeypatch.setenv("MLPLANE_DRIFT_WINDOW_SECONDS", "0")
    with pytest.raises(InvalidInput, match="cannot both be 0"):
        load_settings(DriftSettings)


def test_team_locations_add_to_the_teams_own_prefix() -> None:
    settings = DriftSettings(team_data_locations={"risk": ["s3://ml-data/risk/"]})
    assert settings.data_locations("risk") == (
        "s3://mlplane/drift/teams/risk/",
        "s3://ml-data/risk/",
    )
