"""The numeric statistics from summaries against scipy on the raw rows, within stated bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
from mlplane_drift.stats_numeric import edges_are_exact, ks, wasserstein_normed
from mlplane_drift.stats_quantiles import QuantileSample
from mlplane_drift.window import NumericWindow, WindowSummary
from scipy import stats

SPEC = [FeatureSpec("x", FeatureKind.NUMERIC)]


def _summaries(
    reference: np.ndarray, current: np.ndarray
) -> tuple[ReferenceProfile, NumericWindow]:
    profile = ReferenceProfile.from_table(pa.table({"x": reference}), SPEC)
    window = WindowSummary.empty(profile).add(pa.table({"x": current}))
    feature = window.features["x"]
    assert isinstance(feature, NumericWindow)
    return profile, feature


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "rounding"),
    [(50, 40, None), (900, 700, None), (1000, 9000, 1), (700, 50_000, None), (1000, 30_000, 0)],
)
def test_ks_from_summaries_equals_scipy_on_raw_rows(
    reference_rows: int, current_rows: int, rounding: int | None
) -> None:
    rng = np.random.default_rng(reference_rows * 7 + current_rows)
    reference = rng.normal(0.0, 1.0, reference_rows)
    current = rng.normal(0.08, 1.1, current_rows)
    if rounding is not None:  # ties inside and across the samples
        reference, current = np.round(reference, rounding), np.round(current, rounding)
    profile, window = _summaries(reference, current)
    numeric = profile.profiles["x"]
    assert edges_are_exact(numeric)  # type: ignore[arg-type]
    score, statistic = ks(numeric, window)  # type: ignore[arg-type]
    expected = stats.ks_2samp(reference, current)
    assert statistic == expected.statistic
    assert score.value == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert score.bound == 0.0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize(
    ("reference", "current"),
    [
        ("normal", "normal_shifted"),
        ("normal", "normal"),
        ("lognormal", "lognormal_wide"),
        ("uniform", "bimodal"),
        ("normal", "far_away"),
    ],
)
def test_wasserstein_from_summaries_is_within_its_bound_of_scipy(
    seed: int, reference: str, current: str
) -> None:
    rng = np.random.default_rng(seed)
    draw = {
        "normal": lambda n: rng.normal(0.0, 1.0, n),
        "normal_shifted": lambda n: rng.normal(0.15, 1.0, n),
        "lognormal": lambda n: rng.lognormal(0.0, 0.8, n),
        "lognormal_wide": lambda n: rng.lognormal(0.1, 1.1, n),
        "uniform": lambda n: rng.uniform(-2.0, 2.0, n),
        "bimodal": lambda n: np.concatenate(
            [rng.normal(-1, 0.3, n // 2), rng.normal(1, 0.3, n - n // 2)]
        ),
        "far_away": lambda n: rng.normal(8.0, 2.0, n),
    }
    ref, cur = draw[reference](60_000), draw[current](200_000)
    profile, window = _summaries(ref, cur)
    numeric = profile.profiles["x"]
    assert not edges_are_exact(numeric)  # type: ignore[arg-type]  # 1,024 quantile edges
    score = wasserstein_normed(numeric, window)  # type: ignore[arg-type]
    exact = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    print(
        f"{reference}->{current}: ours {score.value:.6f} exact {exact:.6f} bound {score.bound:.2e}"
    )
    assert abs(score.value - exact) <= score.bound + 1e-12
    assert score.bound < 0.01  # small next to the 0.1 threshold


def test_quantile_sample_past_its_limit_stays_within_its_rank_error() -> None:
    rng = np.random.default_rng(11)
    data = np.concatenate([rng.normal(0, 1, 30_000), rng.exponential(3.0, 30_000)])
    sample = QuantileSample(limit=1_000)
    for chunk in np.array_split(data, 37):
        sample.add(chunk)
    values, weights, rank_error = sample.finish()
    assert len(values) <= 1_000
    assert weights.sum() == pytest.approx(len(data))
    assert 0 < rank_error < 0.02
    grid = np.sort(data)
    true_cdf = np.arange(1, len(grid) + 1) / len(grid)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    sample_cdf = cumulative[np.searchsorted(values, grid, side="right")]
    assert np.max(np.abs(sample_cdf - true_cdf)) <= rank_error + 1e-12


def test_window_cells_count_and_sum_exactly_what_falls_in_them() -> None:
    rng = np.random.default_rng(21)
    reference = np.round(rng.normal(0, 1, 3000), 2)  # ties, and edges at quantiles
    current = np.concatenate([np.round(rng.normal(0.2, 1.5, 5000), 2), [-50.0, 50.0]])
    profile, window = _summaries(reference, current)
    edges = profile.profiles["x"].edges  # type: ignore[union-attr]
    lower = np.concatenate([[-np.inf], edges])
    upper = np.concatenate([edges, [np.inf]])
    for i in range(len(edges) + 1):
        inside = current[(current > lower[i]) & (current < upper[i])]
        assert window.counts[2 * i] == len(inside)
        assert window.sums[2 * i] == pytest.approx(inside.sum(), abs=1e-9)
        if i < len(edges):
            assert window.counts[2 * i + 1] == np.count_nonzero(current == edges[i])
    assert (window.minimum, window.maximum) == (-50.0, 50.0)


@pytest.mark.parametrize(("reference_rows", "current_rows"), [(5_000, 3_000), (40_000, 20_000)])
def test_ks_on_quantile_edges_is_within_its_bound(reference_rows: int, current_rows: int) -> None:
    rng = np.random.default_rng(reference_rows)
    reference = rng.normal(0.0, 1.0, reference_rows)
    current = rng.normal(0.03, 1.0, current_rows)
    profile, window = _summaries(reference, current)
    numeric = profile.profiles["x"]
    assert not edges_are_exact(numeric)  # type: ignore[arg-type]
    score, _ = ks(numeric, window)  # type: ignore[arg-type]
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert abs(score.value - exact.pvalue) <= score.bound + 1e-12
    assert score.bound < 0.2
