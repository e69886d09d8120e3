"""Window summaries merged from any split of the rows, in any order, judge as one summary.

Several replicas add to one window; the service merges their partial summaries from the
database. The verdict must not depend on who got which rows or in which order they merge.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_drift.detect import detect
from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
from mlplane_drift.window import MAX_UNSEEN, CategoricalWindow, NumericWindow, WindowSummary

SPECS = [
    FeatureSpec("x", FeatureKind.NUMERIC),
    FeatureSpec("levels", FeatureKind.NUMERIC),
    FeatureSpec("city", FeatureKind.CATEGORICAL),
    FeatureSpec("flag", FeatureKind.BINARY),
]


def _rows(rng: np.random.Generator, n: int, shift: float, unseen: int) -> pa.Table:
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    levels = rng.integers(0, 4 + (1 if shift else 0), n).astype(np.float64)
    known = [f"city-{i}" for i in range(6)]
    novel = [f"new-{i}" for i in range(unseen)] or known
    city = np.where(rng.random(n) < 0.7, rng.choice(known, n), rng.choice(novel, n))
    flag = rng.random(n) < 0.4
    return pa.table({"x": x, "levels": levels, "city": city, "flag": flag})


def _profile(rows: int) -> ReferenceProfile:
    return ReferenceProfile.from_table(_rows(np.random.default_rng(rows), rows, 0.0, 0), SPECS)


PROFILES = {"small": _profile(800), "large": _profile(20_000)}


def _same_state(a: WindowSummary, b: WindowSummary) -> None:
    assert a.count == b.count
    for name, left in a.features.items():
        right = b.features[name]
        assert np.array_equal(left.counts, right.counts), name
        assert left.missing == right.missing
        if isinstance(left, NumericWindow) and isinstance(right, NumericWindow):
            assert (left.minimum, left.maximum, left.small) == (
                right.minimum,
                right.maximum,
                right.small,
            )
            np.testing.assert_allclose(left.sums, right.sums, rtol=1e-12, atol=1e-9)
        if isinstance(left, CategoricalWindow) and isinstance(right, CategoricalWindow):
            assert (left.unseen, left.unseen_other) == (right.unseen, right.unseen_other)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(sorted(PROFILES)),
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 3000),
    shift=st.sampled_from([0.0, 0.3]),
    unseen=st.sampled_from([0, 5, MAX_UNSEEN + 60]),
    parts=st.integers(1, 7),
    data=st.data(),
)
def test_random_splits_merged_in_random_order_give_the_one_summary_verdict(
    which: str, seed: int, rows: int, shift: float, unseen: int, parts: int, data: st.DataObject
) -> None:
    profile = PROFILES[which]
    table = _rows(np.random.default_rng(seed), rows, shift, unseen)
    whole = WindowSummary.empty(profile).add(table)

    cuts = sorted(data.draw(st.lists(st.integers(0, rows), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, rows]
    # Each replica may also see its rows in a different order.
    order = np.random.default_rng(seed + 1).permutation(rows)
    partials = []
    for start, stop in itertools.pairwise(bounds):
        summary = WindowSummary.empty(profile).add(table.take(order[start:stop]))
        # Partial summaries travel through the database as bytes.
        partials.append(WindowSummary.from_bytes(summary.to_bytes(), profile))
    merge_order = data.draw(st.permutations(range(len(partials))))
    merged = partials[merge_order[0]]
    for index in merge_order[1:]:
        merged = merged.merge(partials[index])

    _same_state(whole, merged)
    expected = detect(profile, whole)
    got = detect(profile, merged)
    assert got.dataset_drifted == expected.dataset_drifted
    assert got.drift_share == expected.drift_share
    for mine, theirs in zip(got.features, expected.features, strict=True):
        assert (mine.feature, mine.method, mine.drifted) == (
            theirs.feature,
            theirs.method,
            theirs.drifted,
        )
        assert mine.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12, nan_ok=True)
        assert mine.psi == pytest.approx(theirs.psi, rel=1e-9, abs=1e-12, nan_ok=True)
