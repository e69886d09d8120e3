"""Bad data and bad configs fail with clear InvalidInput errors, and change nothing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from mlplane_drift.detect import DriftConfig, FeatureConfig, detect
from mlplane_drift.errors import CorruptSummary, DriftInputError, SummaryMismatch
from mlplane_drift.methods import StatTest
from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
from mlplane_drift.window import WindowSummary
from mlplane_runtime.errors import InvalidInput


def _profile(seed: int = 0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return ReferenceProfile.from_table(
        pa.table({"age": rng.normal(40, 9, 500), "plan": rng.choice(["a", "b", "c"], 500)})
    )


def test_errors_are_invalid_input_with_problem_details() -> None:
    for error in (DriftInputError, SummaryMismatch, CorruptSummary):
        assert issubclass(error, InvalidInput)
        problem = error("bad").problem()
        assert problem["status"] == 422
        assert problem["detail"] == "bad"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"age": [1.0, 2.0]}, "lacks features: plan"),
        ({"age": ["old", "young"], "plan": ["a", "b"]}, "'age' expects number values"),
        ({"age": [1.0, 2.0], "plan": [1, 2]}, "'plan' expects string values"),
        ({"age": [1.0, "x"], "plan": ["a", "b"]}, "could not be read"),
        ({"age": [1.0], "plan": ["a", "b"]}, "different lengths"),
        ({"age": [[1.0]], "plan": ["a"]}, "'age' expects number values"),
    ],
)
def test_bad_window_data_is_refused_and_counts_nothing(
    data: dict[str, list[object]], message: str
) -> None:
    profile = _profile()
    window = WindowSummary.empty(profile).add({"age": [41.0], "plan": ["a"]})
    before = window.to_bytes()
    with pytest.raises(DriftInputError, match=message):
        window.add(data)
    assert window.to_bytes() == before


def test_window_of_nulls_only_is_counted_as_missing() -> None:
    profile = _profile()
    window = WindowSummary.empty(profile).add({"age": [None, None], "plan": [None, None]})
    verdict = detect(profile, window)
    assert window.count == 2
    assert all(result.method is None and result.nan_share == 1.0 for result in verdict.features)
    assert verdict.drift_share == 0.0
    assert not verdict.dataset_drifted


def test_empty_window_and_foreign_summaries_are_refused() -> None:
    profile, other = _profile(0), _profile(1)
    with pytest.raises(DriftInputError, match="no rows"):
        detect(profile, WindowSummary.empty(profile))
    theirs = WindowSummary.empty(other).add({"age": [1.0], "plan": ["a"]})
    with pytest.raises(SummaryMismatch):
        detect(profile, theirs)
    with pytest.raises(SummaryMismatch):
        WindowSummary.empty(profile).merge(theirs)
    with pytest.raises(SummaryMismatch):
        WindowSummary.from_bytes(theirs.to_bytes(), profile)
    with pytest.raises(CorruptSummary):
        WindowSummary.from_bytes(b"MLDW\x01garbage", profile)


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"age": pa.array([], pa.float64())}),
        pa.table({"when": pa.array([1, 2], pa.timestamp("s"))}),
    ],
)
def test_unusable_references_are_refused(table: pa.Table) -> None:
    with pytest.raises(DriftInputError):
        ReferenceProfile.from_table(table)


def test_reference_features_must_exist_and_fit_their_kind() -> None:
    table = pa.table({"name": ["a", "b"], "x": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="lacks features: y"):
        ReferenceProfile.from_table(table, [FeatureSpec("y", FeatureKind.NUMERIC)])
    with pytest.raises(DriftInputError, match="declared numeric"):
        ReferenceProfile.from_table(table, [FeatureSpec("name", FeatureKind.NUMERIC)])
    with pytest.raises(DriftInputError, match="not a readable Parquet"):
        ReferenceProfile.from_parquet(b"not parquet")


def test_configs_naming_unknown_features_or_unfit_tests_are_refused() -> None:
    profile = _profile()
    window = WindowSummary.empty(profile).add({"age": [40.0, 41.0], "plan": ["a", "b"]})
    with pytest.raises(DriftInputError, match="unknown features"):
        detect(profile, window, DriftConfig(features={"nope": FeatureConfig()}))
    with pytest.raises(DriftInputError, match="does not apply"):
        detect(profile, window, DriftConfig(features={"plan": FeatureConfig(method=StatTest.KS)}))
    with pytest.raises(DriftInputError):
        DriftConfig(share_threshold=0.0)
    with pytest.raises(DriftInputError):
        DriftConfig(features={"age": FeatureConfig(threshold=-1.0)})


def test_per_feature_method_threshold_and_psi_overrides_apply() -> None:
    profile = _profile()
    rng = np.random.default_rng(5)
    window = WindowSummary.empty(profile).add(
        {"age": rng.normal(40, 9, 300).tolist(), "plan": rng.choice(["a", "b", "c"], 300).tolist()}
    )
    config = DriftConfig(
        features={
            "age": FeatureConfig(method=StatTest.WASSERSTEIN, threshold=1e-6),
            "plan": FeatureConfig(psi_threshold=1e-9),
        }
    )
    age, plan = detect(profile, window, config).features
    assert age.method == StatTest.WASSERSTEIN
    assert age.threshold == 1e-6
    assert age.drifted
    assert plan.method == StatTest.CHI_SQUARE
    assert plan.drifted
    assert "PSI" in plan.note


def test_rows_as_feature_mappings_count_absent_features_as_missing() -> None:
    profile = _profile()
    window = WindowSummary.empty(profile).add_rows(
        [{"age": 30, "plan": "a", "extra": 1}, {"age": 41.5}, {"plan": "b"}, {}]
    )
    assert window.count == 4
    verdict = detect(profile, window)
    age, plan = verdict.features
    assert age.nan_share == 0.5
    assert plan.nan_share == 0.5
    with pytest.raises(DriftInputError, match="must be an object"):
        window.add_rows([{"age": 1.0}, ["not", "a", "row"]])  # type: ignore[list-item]
    with pytest.raises(DriftInputError, match="could not be read"):
        window.add_rows([{"age": 1.0}, {"age": "x"}])


def test_config_from_json_like_data_round_trips_and_refuses_nonsense() -> None:
    data = {
        "share_threshold": 0.3,
        "alpha": 0.01,
        "features": {"age": {"method": "wasserstein", "threshold": 0.2, "psi_threshold": 0.25}},
    }
    config = DriftConfig.from_dict(data)
    assert config.features["age"] == FeatureConfig(StatTest.WASSERSTEIN, 0.2, 0.25)
    assert DriftConfig.from_dict(config.to_dict()) == config
    for bad in (
        {"share": 0.3},
        {"features": {"age": {"method": "t-test"}}},
        {"features": {"age": {"threshold": "high"}}},
        {"features": {"age": {"threshold": True}}},
        {"features": {"age": {"bogus": 1}}},
        {"alpha": 2.0},
        [],
    ):
        with pytest.raises(DriftInputError):
            DriftConfig.from_dict(bad)  # type: ignore[arg-type]
