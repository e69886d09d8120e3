"""Each feature's reference and current distributions on common bins, as the reports
draw them: shares that add up, the window's counts kept exactly."""

from __future__ import annotations

import pyarrow as pa
import pytest
from mlplane_drift.distributions import MAX_BINS, MAX_CATEGORIES, of_feature
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.render import report_png
from mlplane_drift.window import WindowSummary


def _window(profile: ReferenceProfile, data: dict[str, list[object]]) -> WindowSummary:
    return WindowSummary.empty(profile).add(data)


def test_numeric_bins_hold_every_window_value_including_those_outside_the_reference() -> None:
    profile = ReferenceProfile.from_table(pa.table({"x": [float(i) for i in range(1000)]}))
    window = _window(profile, {"x": [-50.0, 0.0, 10.0, 500.0, 999.0, 5000.0, None]})
    shown = of_feature(profile, window, "x")
    assert shown["kind"] == "numeric"
    assert len(shown["bins"]) <= MAX_BINS
    assert shown["reference"] == pytest.approx(
        [1 / len(shown["bins"])] * len(shown["bins"]), abs=0.01
    )
    assert sum(shown["current"]) == pytest.approx(1.0, abs=1e-5)
    assert shown["current"][0] == pytest.approx(3 / 6)  # -50 below the minimum, 0, 10
    assert shown["current"][-1] == pytest.approx(2 / 6)  # 999 and 5000 above the maximum
    assert shown["missing"] == {"reference": 0, "current": 1}


def test_a_single_valued_feature_is_one_bin() -> None:
    profile = ReferenceProfile.from_table(pa.table({"x": [3.0] * 10, "y": [1.0, 2.0] * 5}))
    shown = of_feature(profile, _window(profile, {"x": [3.0, 4.0], "y": [1.0, 2.0]}), "x")
    assert shown["bins"] == [[3.0, 3.0]]
    assert shown["reference"] == [1.0]


def test_categories_show_the_most_frequent_the_rest_and_the_unseen() -> None:
    values = [f"c{i:02d}" for i in range(30) for _ in range(30 - i)]
    profile = ReferenceProfile.from_table(pa.table({"c": values}))
    window = _window(profile, {"c": ["c00", "c29", "new", "new", None]})
    shown = of_feature(profile, window, "c")
    assert shown["kind"] == "categorical"
    assert shown["categories"][:2] == ["c00", "c01"]
    assert shown["categories"][-2:] == ["(other)", "(unseen)"]
    assert len(shown["categories"]) == MAX_CATEGORIES + 2
    assert shown["current"][-1] == pytest.approx(2 / 4)
    assert sum(shown["reference"]) == pytest.approx(1.0, abs=1e-5)  # shares rounded to 6 places
    assert sum(shown["current"]) == pytest.approx(1.0, abs=1e-5)


def test_a_report_of_many_features_renders_as_one_png() -> None:
    features = [
        {
            "feature": f"f{i}",
            "method": "wasserstein",
            "drifted": i % 3 == 0,
            "distribution": {
                "kind": "numeric",
                "bins": [[0.0, 1.0], [1.0, 2.0]],
                "reference": [0.5, 0.5],
                "current": [0.2, 0.8],
            },
        }
        for i in range(60)
    ]
    document = {
        "model": "m",
        "version": 1,
        "environment": "prod",
        "window": {"samples": 10},
        "drift_share": 0.33,
        "dataset_drifted": False,
        "features": features,
    }
    assert report_png(document).startswith(b"\x89PNG")
