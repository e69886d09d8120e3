"""Shifted columns are flagged, unshifted ones are not, and false alarms stay near alpha."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlplane_drift.detect import DriftConfig
from mlplane_drift.methods import StatTest
from mlplane_drift.profile import FeatureKind

from .support import kinds_of, make_frame, mlplane_verdict


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "shift", "expected_methods"),
    [
        (800, 600, ("n0", "c1", "b0"), {StatTest.KS, StatTest.CHI_SQUARE, StatTest.Z}),
        (1000, 400, ("n2",), {StatTest.KS, StatTest.CHI_SQUARE, StatTest.Z}),
        (50_000, 10_000, ("n1", "n2", "c0"), {StatTest.WASSERSTEIN, StatTest.JENSEN_SHANNON}),
        (5_000, 2_000, ("b0", "c1"), {StatTest.WASSERSTEIN, StatTest.JENSEN_SHANNON}),
    ],
)
def test_shifted_synthetic_data_flags_exactly_the_shifted_columns(
    reference_rows: int, current_rows: int, shift: tuple[str, ...], expected_methods: set[StatTest]
) -> None:
    rng = np.random.default_rng(reference_rows + current_rows)
    reference = make_frame(rng, reference_rows)
    current = make_frame(rng, current_rows, shift=shift)
    # p-value tests alarm on a same-distribution column with probability alpha; at 0.001 an
    # unshifted column almost never does, and the shifted ones are still far past it.
    config = DriftConfig(alpha=0.001)
    verdict = mlplane_verdict(reference, current, kinds_of(reference), config)
    assert {r.feature for r in verdict.drifted_features} == set(shift)
    assert {r.method for r in verdict.features} == expected_methods
    assert verdict.drift_share == pytest.approx(len(shift) / len(verdict.features))
    assert verdict.dataset_drifted == (verdict.drift_share >= 0.5)


def test_unshifted_data_over_200_seeds_raises_at_most_one_and_a_half_alpha_false_alarms() -> None:
    # Small-reference regime (KS, chi-square, Z), several independent columns of each kind
    # per seed: 200 seeds x 4 columns = 800 tries per test. Evidently's chi-square compares
    # the window with the reference's frequencies as if they were exact, which inflates its
    # statistic by about (1 + window / reference); a window a twentieth of the reference
    # keeps that inflation to 5 %.
    alarms = {StatTest.KS: 0, StatTest.CHI_SQUARE: 0, StatTest.Z: 0}
    tries = dict.fromkeys(alarms, 0)
    for seed in range(200):
        rng = np.random.default_rng(10_000 + seed)
        reference = make_frame(rng, 1000, numeric=4, categorical=4, binary=4)
        current = make_frame(rng, 50, numeric=4, categorical=4, binary=4)
        verdict = mlplane_verdict(reference, current, kinds_of(reference))
        for result in verdict.features:
            assert result.method is not None
            tries[result.method] += 1
            alarms[result.method] += result.drifted
    alpha = 0.05
    rates = {test: alarms[test] / tries[test] for test in alarms}
    assert all(count == 800 for count in tries.values())
    assert all(rate <= 1.5 * alpha for rate in rates.values()), rates


def test_all_missing_window_column_is_reported_untested_not_raised() -> None:
    rng = np.random.default_rng(3)
    reference = make_frame(rng, 500, numeric=2, categorical=1, binary=0)
    current = make_frame(rng, 200, numeric=2, categorical=1, binary=0)
    current["n1"] = np.nan
    current["c0"] = pd.Series([None] * 200, dtype=object)
    verdict = mlplane_verdict(reference, current, kinds_of(reference))
    by_name = {r.feature: r for r in verdict.features}
    for name in ("n1", "c0"):
        assert by_name[name].method is None
        assert by_name[name].drifted is False
        assert by_name[name].nan_share == 1.0
        assert "no non-missing values" in by_name[name].note
    assert by_name["n0"].method == StatTest.KS
    assert len(verdict.tested_features) == 1


def test_unseen_categories_and_missing_values_are_reported() -> None:
    reference = pd.DataFrame({"color": ["red", "blue"] * 500, "size": np.arange(1000.0)})
    current = pd.DataFrame(
        {
            "color": ["red"] * 50 + ["violet"] * 30 + [None] * 20,
            "size": [np.nan] * 10 + [5000.0] * 10 + list(np.arange(80.0)),
        }
    )
    kinds = {"color": FeatureKind.CATEGORICAL, "size": FeatureKind.NUMERIC}
    verdict = mlplane_verdict(reference, current, kinds)
    color, size = verdict.features
    assert color.unseen_share == pytest.approx(30 / 80)
    assert color.nan_share == pytest.approx(0.2)
    assert color.drifted
    assert color.score == 0.0  # an unseen category: chi-square p = 0
    assert size.nan_share == pytest.approx(0.1)
    assert size.unseen_share == pytest.approx(10 / 90)  # above the reference's maximum
