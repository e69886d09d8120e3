"""Numeric statistics between a reference profile and a window summary, with error bounds.

The window knows, per cell of the profile's edges, how many values fell there and their
sum. From that:

- KS: both CDFs are known exactly at every edge and just below it. When the edges are every
  distinct reference value the reference CDF is flat between edges, so the supremum is
  reached at those points and the statistic is exact. Otherwise we return the statistic at
  those points (a lower bound) and bound what lies between.
- Wasserstein: the window's values in a cell are collapsed to their mean. Collapsing keeps the
  integral of the window CDF over the cell, so ∫|F_ref - F_cur| is unchanged on every cell
  where the two CDFs cannot cross (neither can be above the other somewhere) and on every
  edge cell; elsewhere the error is at most W1(cell values, their mean) <= share *
  2 (m - a)(b - m) / (b - a) for values in (a, b) with mean m, and at most twice how far the
  reference CDF dips into the window CDF's range over the cell (see `_crossing_depth`); we
  take the smaller. Cells below the lowest and above the highest reference value never
  cross (F_ref is 0 or 1 there). Measured: bounds of 1e-6 to 3e-3 (normalised), actual
  errors of 1e-7 to 1.5e-3, against the 0.1 threshold.
- A reference past the exact sample limit adds rank_error * (max - min) to the Wasserstein
  bound and rank_error to the KS bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from mlplane_drift.profile import NumericProfile
from mlplane_drift.window import NumericWindow

FloatArray = npt.NDArray[np.float64]

# scipy's ks_2samp computes exact p-values up to this sample size, asymptotic ones above.
KS_EXACT_MAX_N = 10_000


@dataclass(frozen=True)
class Score:
    value: float
    bound: float
    """How far `value` may be from the statistic on the raw rows (0.0: exact)."""


def _reference_cdf(profile: NumericProfile) -> tuple[FloatArray, FloatArray]:
    """The reference CDF at each edge and just below it."""
    cumulative = np.concatenate([[0.0], np.cumsum(profile.weights)])
    total = float(profile.count)
    at = cumulative[np.searchsorted(profile.values, profile.edges, side="right")] / total
    below = cumulative[np.searchsorted(profile.values, profile.edges, side="left")] / total
    return at, below


def _window_cdf(window: NumericWindow) -> tuple[FloatArray, FloatArray, int]:
    cumulative = np.cumsum(window.counts)
    n = int(cumulative[-1])
    # Cells are [below e0, e0, (e0, e1), e1, ...]: cumulative[2i] counts values < e_i,
    # cumulative[2i + 1] values <= e_i.
    return cumulative[1::2] / n, cumulative[0:-1:2] / n, n


def edges_are_exact(profile: NumericProfile) -> bool:
    """Whether the edges are every distinct reference value (then KS from counts is exact)."""
    return profile.exact and len(profile.edges) == len(profile.values)


def cell_points(profile: NumericProfile, window: NumericWindow) -> tuple[FloatArray, FloatArray]:
    """The window collapsed: each non-empty cell as one point (its mean) with its count."""
    edges = profile.edges
    counts = window.counts.astype(np.float64)
    points = np.empty(len(counts), dtype=np.float64)
    points[1::2] = edges
    with np.errstate(divide="ignore", invalid="ignore"):
        means = window.sums[0::2] / counts[0::2]
    lower = np.concatenate([[-np.inf], edges])
    upper = np.concatenate([edges, [np.inf]])
    # Keep a mean strictly inside its open cell even if rounding pushed it onto an edge.
    inner = np.minimum(np.maximum(means, np.nextafter(lower, upper)), np.nextafter(upper, lower))
    points[0::2] = inner
    used = counts > 0
    return points[used], counts[used]


def _asymptotic_p(statistic: float, n1: int, n2: int) -> float:
    # scipy's ks_2samp for large samples: Smirnov's distribution at round(n1 n2 / (n1 + n2)).
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


def ks(profile: NumericProfile, window: NumericWindow) -> tuple[Score, float]:
    """The two-sample KS p-value (as scipy's `ks_2samp`, method "auto") and the statistic.

    Exact when the edges are every reference value. Otherwise the statistic is known to lie
    in [D_lo, D_hi] (D_lo: both CDFs at the edges; D_hi: their extremes between edges, plus
    the reference's rank error); we report D_lo with the asymptotic p-value and as bound
    the p-value's change between D_lo and D_hi.
    """
    ref_at, ref_below = _reference_cdf(profile)
    cur_at, cur_below, n2 = _window_cdf(window)
    n1 = profile.count
    diffs = np.concatenate([ref_at - cur_at, ref_below - cur_below])
    statistic = float(max(diffs.max(), -diffs.min(), 0.0))
    if not edges_are_exact(profile):
        # Between edges both CDFs move within their values at the two ends.
        ref_prev = np.concatenate([[0.0], ref_at])
        cur_prev = np.concatenate([[0.0], cur_at])
        ref_next = np.concatenate([ref_below, [1.0]])
        cur_next = np.concatenate([cur_below, [1.0]])
        upper = float(max((ref_next - cur_prev).max(), (cur_next - ref_prev).max()))
        upper = min(max(upper, statistic) + profile.rank_error, 1.0)
        lower = max(statistic - profile.rank_error, 0.0)
        p_value = _asymptotic_p(statistic, n1, n2)
        bound = max(_asymptotic_p(lower, n1, n2) - p_value, p_value - _asymptotic_p(upper, n1, n2))
        return Score(p_value, bound), statistic
    if max(n1, n2) <= KS_EXACT_MAX_N:
        # Small samples: scipy's exact p-value on stand-in samples with the same counts at
        # every edge, hence the same statistic.
        reference = np.repeat(profile.values, profile.weights.astype(np.int64))
        points, counts = cell_points(profile, window)
        current = np.repeat(points, counts.astype(np.int64))
        result = stats.ks_2samp(reference, current, method="auto")
        return Score(float(result.pvalue), 0.0), float(result.statistic)
    return Score(_asymptotic_p(statistic, n1, n2), 0.0), statistic


def _weighted_w1(
    u_values: FloatArray, u_weights: FloatArray, v_values: FloatArray, v_weights: FloatArray
) -> float:
    """Wasserstein-1 distance between two weighted samples whose values are sorted."""
    all_values = np.sort(np.concatenate([u_values, v_values]), kind="stable")
    deltas = np.diff(all_values)
    u_cum = np.concatenate([[0.0], np.cumsum(u_weights)])
    v_cum = np.concatenate([[0.0], np.cumsum(v_weights)])
    u_cdf = u_cum[np.searchsorted(u_values, all_values[:-1], side="right")] / u_cum[-1]
    v_cdf = v_cum[np.searchsorted(v_values, all_values[:-1], side="right")] / v_cum[-1]
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def wasserstein_normed(profile: NumericProfile, window: NumericWindow) -> Score:
    """W1(reference, window) / max(reference std, 0.001), as Evidently's "wasserstein"."""
    points, counts = cell_points(profile, window)
    distance = _weighted_w1(profile.values, profile.weights, points, counts)
    norm = max(profile.std, 0.001)
    return Score(distance / norm, _wasserstein_bound(profile, window) / norm)


def _wasserstein_bound(profile: NumericProfile, window: NumericWindow) -> float:
    edges = profile.edges
    ref_at, ref_below = _reference_cdf(profile)
    cur_at, cur_below, n = _window_cdf(window)
    counts = window.counts[0::2][1:-1].astype(np.float64)  # interior open cells only
    crossing_error = 0.0
    if len(counts):
        # Interior cell i lies between edges i and i + 1.
        ref_lo, ref_hi = ref_at[:-1], ref_below[1:]
        cur_lo, cur_hi = cur_at[:-1], cur_below[1:]
        # F_ref - F_cur can change sign inside the cell only if each can be above the other.
        overlap = (ref_lo < cur_hi) & (cur_lo < ref_hi) & (counts > 0)
        a, b = edges[:-1], edges[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = window.sums[0::2][1:-1] / counts
            spread = np.where(b > a, 2 * (mean - a) * (b - mean) / (b - a), 0.0)
        collapse = counts / n * np.maximum(spread, 0.0)
        for i in np.flatnonzero(overlap):
            depth = _crossing_depth(profile, a[i], b[i], ref_lo[i], cur_lo[i], cur_hi[i])
            crossing_error += min(float(collapse[i]), depth)
    span = max(profile.maximum, window.maximum) - min(profile.minimum, window.minimum)
    return crossing_error + profile.rank_error * span


def _crossing_depth(
    profile: NumericProfile, a: float, b: float, ref_start: float, low: float, high: float
) -> float:
    """A second bound on the collapse error in one cell (a, b), often far tighter.

    With R the reference CDF, F the window's and G the collapsed one (both within [low,
    high] on the cell, with equal integrals): ∫|R - F| - ∫|R - G| = 2 (∫(F - R)+ - ∫(G - R)+)
    = 2 (∫(R - F)+ - ∫(R - G)+), so the error is at most 2 ∫(high - R)+ and at most
    2 ∫(R - low)+, integrals we know exactly from the reference values inside the cell.
    """
    inside = slice(
        np.searchsorted(profile.values, a, side="right"),
        np.searchsorted(profile.values, b, side="left"),
    )
    points = profile.values[inside]
    steps = np.concatenate(
        [[ref_start], ref_start + np.cumsum(profile.weights[inside]) / profile.count]
    )
    widths = np.diff(np.concatenate([[a], points, [b]]))
    above = float(np.sum(np.maximum(high - steps, 0.0) * widths))
    below = float(np.sum(np.maximum(steps - low, 0.0) * widths))
    return 2.0 * min(above, below)


def sturges_shares(
    profile: NumericProfile, window: NumericWindow
) -> tuple[FloatArray, FloatArray, float]:
    """Reference and window histograms on numpy's "sturges" bins over both samples together.

    As Evidently's `get_binned_data` for numeric features with more than 20 distinct
    reference values. The window's collapsed cells are binned by their means, so the
    returned bound is the share of window values in cells that straddle a bin border.
    """
    n = profile.count + window.count
    low = min(profile.minimum, window.minimum)
    high = max(profile.maximum, window.maximum)
    if high == low:
        bins = np.linspace(low - 0.5, high + 0.5, 2)
    else:
        width = (high - low) / (np.log2(n) + 1.0)
        bins = np.linspace(low, high, int(np.ceil((high - low) / width)) + 1)
    reference = np.histogram(profile.values, bins, weights=profile.weights)[0]
    points, counts = cell_points(profile, window)
    current = np.histogram(points, bins, weights=counts)[0]
    # A window cell straddles a bin border when a border lies strictly inside it.
    lower = np.concatenate([[window.minimum], profile.edges])
    upper = np.concatenate([profile.edges, [window.maximum]])
    inner = bins[1:-1]
    first = np.searchsorted(inner, lower, side="right")
    last = np.searchsorted(inner, upper, side="left")
    straddling = (last > first) & (window.counts[0::2] > 0)
    bound = float(window.counts[0::2][straddling].sum()) / max(window.count, 1)
    return reference.astype(np.float64), current.astype(np.float64), bound
