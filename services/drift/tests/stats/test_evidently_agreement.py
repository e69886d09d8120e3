"""Our verdicts against Evidently 0.7.23's DataDriftPreset on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlplane_drift.profile import FeatureKind

from .support import evidently_columns, kinds_of, make_frame, mlplane_verdict


def _compare(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, FeatureKind]) -> None:
    numeric = [n for n, k in kinds.items() if k == FeatureKind.NUMERIC]
    categorical = [n for n, k in kinds.items() if k != FeatureKind.NUMERIC]
    theirs = evidently_columns(reference, current, numeric, categorical)
    ours = {r.feature: r for r in mlplane_verdict(reference, current, kinds).features}
    assert set(theirs) == set(ours)
    for name, expected in theirs.items():
        got = ours[name]
        assert got.method == expected.method, name
        tolerance = got.error_bound + 1e-9 * max(1.0, abs(expected.score))
        assert got.score == pytest.approx(expected.score, abs=tolerance), name
        if abs(expected.score - expected.threshold) > got.error_bound + 1e-9:
            assert got.drifted == expected.drifted, name


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "seed"),
    [(200, 150, 1), (600, 80, 2), (1000, 1000, 3), (1000, 12_000, 4)],
)
def test_small_references_agree_with_evidently_ks_chi_square_z(
    reference_rows: int, current_rows: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    reference = make_frame(rng, reference_rows)
    current = make_frame(rng, current_rows, shift=("n1", "c0"))
    _compare(reference, current, kinds_of(reference))


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "seed"),
    [(1001, 500, 5), (5000, 3000, 6), (30_000, 20_000, 7), (150_000, 20_000, 8)],
)
def test_large_references_agree_with_evidently_wasserstein_jensen_shannon(
    reference_rows: int, current_rows: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    reference = make_frame(rng, reference_rows)
    current = make_frame(rng, current_rows, shift=("n0", "n2", "b0"))
    _compare(reference, current, kinds_of(reference))


@pytest.mark.parametrize("reference_rows", [400, 4000])
def test_few_valued_numbers_missing_values_and_unseen_categories_agree(reference_rows: int) -> None:
    rng = np.random.default_rng(reference_rows)

    def frame(rows: int, current: bool) -> pd.DataFrame:
        levels = [1, 2, 3, 4] if not current else [1, 2, 3, 4, 5]
        ints = rng.choice(levels, size=rows).astype(np.float64)
        ints[rng.random(rows) < 0.1] = np.nan
        pair = rng.choice([0.0, 1.0], size=rows)
        noisy = rng.lognormal(0.0, 1.0, rows)
        noisy[rng.random(rows) < 0.05] = np.inf
        colors = ["red", "green", "blue"] + (["violet"] if current else [])
        cats = pd.Series(rng.choice(colors, size=rows), dtype=object)
        cats[rng.random(rows) < 0.1] = None
        return pd.DataFrame({"n_levels": ints, "n_pair": pair, "n_noisy": noisy, "c_color": cats})

    reference, current = frame(reference_rows, False), frame(700, True)
    kinds = {
        "n_levels": FeatureKind.NUMERIC,
        "n_pair": FeatureKind.NUMERIC,
        "n_noisy": FeatureKind.NUMERIC,
        "c_color": FeatureKind.CATEGORICAL,
    }
    _compare(reference, current, kinds)


def test_psi_agrees_with_evidentlys_psi() -> None:
    from evidently.legacy.calculations.stattests.psi import psi_stat_test
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(17)
    reference = make_frame(rng, 20_000, numeric=2, categorical=2, binary=0)
    current = make_frame(rng, 50_000, numeric=2, categorical=2, binary=0, shift=("n0", "c0"))
    verdict = mlplane_verdict(reference, current, kinds_of(reference))
    for result in verdict.features:
        kind = ColumnType.Numerical if result.feature.startswith("n") else ColumnType.Categorical
        expected = psi_stat_test(reference[result.feature], current[result.feature], kind, None)
        if kind == ColumnType.Categorical:
            assert result.psi == pytest.approx(expected.drift_score, rel=1e-9)
        else:
            # Numeric PSI bins the window's cells by their means: close, not exact.
            assert result.psi == pytest.approx(expected.drift_score, rel=0.05, abs=2e-3)
