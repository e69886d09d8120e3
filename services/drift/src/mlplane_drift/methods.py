"""The per-feature tests, as Evidently 0.7.23 defines and chooses them by default.

Each function here takes plain counts or frequencies, so it is the same whether the data
came from rows or from summaries. Definitions follow `evidently/legacy/calculations/stattests`
of Evidently 0.7.23, including their edge cases, so that our verdicts agree with Evidently's
on the same data; where we differ it is said at the function.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]

# Evidently's cut between "small" and "large" references, in non-missing reference values.
SMALL_REFERENCE_MAX = 1_000
# A numeric feature with at most this many distinct values (reference and window together)
# is tested like a categorical one.
FEW_VALUES_MAX = 5
# Numeric features with more distinct reference values than this are binned (Sturges) for
# Jensen-Shannon and PSI; fewer are compared value by value.
BINNED_ABOVE_VALUES = 20


class StatTest(StrEnum):
    """A per-feature test; values match `mlplane_contracts.events.DriftMethod` where it has one."""

    KS = "ks"
    CHI_SQUARE = "chi_square"
    Z = "z"
    WASSERSTEIN = "wasserstein"
    JENSEN_SHANNON = "jensen_shannon"
    PSI = "psi"


P_VALUE_TESTS = frozenset({StatTest.KS, StatTest.CHI_SQUARE, StatTest.Z})
DEFAULT_THRESHOLDS: dict[StatTest, float] = {
    StatTest.KS: 0.05,
    StatTest.CHI_SQUARE: 0.05,
    StatTest.Z: 0.05,
    StatTest.WASSERSTEIN: 0.1,
    StatTest.JENSEN_SHANNON: 0.1,
    StatTest.PSI: 0.1,
}
NUMERIC_TESTS = frozenset(
    {StatTest.KS, StatTest.WASSERSTEIN, StatTest.JENSEN_SHANNON, StatTest.PSI}
)
CATEGORICAL_TESTS = frozenset(
    {StatTest.CHI_SQUARE, StatTest.Z, StatTest.JENSEN_SHANNON, StatTest.PSI}
)


def default_test(numeric: bool, reference_size: int, distinct_values: int) -> StatTest:
    """The test Evidently 0.7.23 picks when none is configured.

    `reference_size` counts the reference's non-missing values; `distinct_values` counts the
    distinct non-missing values of reference and window together (any number above
    FEW_VALUES_MAX may stand for "many"). The rule, from Evidently's
    `_get_default_stattest`:

    - reference of at most 1,000 values: numeric with more than 5 distinct values -> KS;
      otherwise (categorical, or numeric with at most 5 values) -> chi-square, or the
      Z-test for two proportions when there are at most 2 distinct values;
    - larger reference: numeric with more than 5 distinct values -> Wasserstein distance
      normalised by the reference's standard deviation; otherwise -> Jensen-Shannon distance.
    """
    many = numeric and distinct_values > FEW_VALUES_MAX
    if reference_size <= SMALL_REFERENCE_MAX:
        if many:
            return StatTest.KS
        return StatTest.CHI_SQUARE if distinct_values > 2 else StatTest.Z
    return StatTest.WASSERSTEIN if many else StatTest.JENSEN_SHANNON


def is_drift(test: StatTest, score: float, threshold: float) -> bool:
    """Whether a score means drift. Evidently: KS p <= alpha; chi-square, Z p < alpha;
    distances (Wasserstein, Jensen-Shannon, PSI) >= threshold. NaN is never drift."""
    if np.isnan(score):
        return False
    if test == StatTest.KS:
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


def chi_square_p(reference: FloatArray, current: FloatArray) -> float:
    """Pearson's chi-square p-value of current counts against reference frequencies.

    Expected counts are the reference counts scaled to the current total, over the union of
    categories; a category the reference never had gives an infinite statistic, p = 0.
    Like Evidently's, this treats the reference frequencies as exact, so for same-distribution
    data the statistic is inflated by about (1 + window size / reference size): false alarms
    exceed alpha when the window is not much smaller than the reference.
    """
    expected = reference * (current.sum() / reference.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (current - expected) ** 2 / expected
    terms = np.where((expected == 0) & (current == 0), 0.0, terms)
    statistic = float(terms.sum())
    return float(stats.chi2.sf(statistic, len(reference) - 1))


def z_test_p(reference: FloatArray, current: FloatArray) -> float:
    """Two-sided Z-test that two proportions are equal, over at most two categories.

    As in Evidently: one category on both sides gives p = 1; the p-value is
    2 * (1 - Phi(|z|)) (so it reaches 0 for large |z| rather than a tiny number).
    """
    if len(reference) < 2:
        return 1.0
    n1 = float(reference.sum())
    n2 = float(current.sum())
    p1 = float(reference[1:].sum()) / n1
    p2 = float(current[1:].sum()) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def jensen_shannon(reference: FloatArray, current: FloatArray) -> float:
    """Jensen-Shannon distance (natural log, as scipy's default), frequencies normalised."""
    p = reference / reference.sum()
    q = current / current.sum()
    m = (p + q) / 2.0
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
    return float(np.sqrt(max(divergence, 0.0)))


def _fill_zeros(shares: FloatArray) -> FloatArray:
    # Evidently's replacement of empty bins before PSI's logarithm: a millionth of the
    # smallest non-empty share when that is at most 1e-4, else 1e-4.
    nonzero = shares[shares != 0]
    if len(nonzero) == 0:
        return shares
    smallest = float(nonzero.min())
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, fill, shares)


def psi(reference: FloatArray, current: FloatArray) -> float:
    """Population stability index over the same bins, from counts or shares per bin.

    Shares are counts over each side's total; empty bins are filled as Evidently does.
    """
    r = _fill_zeros(reference / reference.sum())
    c = _fill_zeros(current / current.sum())
    return float(np.sum((r - c) * np.log(r / c)))
