"""Whatever a caller sends, the statistics answer with a verdict or a DriftInputError."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_drift.detect import detect
from mlplane_drift.errors import DriftInputError
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.window import WindowSummary

_rng = np.random.default_rng(4)
PROFILES = [
    ReferenceProfile.from_table(
        pa.table(
            {
                "x": _rng.normal(0, 1, rows),
                "k": _rng.integers(0, 3, rows).astype(np.float64),
                "c": _rng.choice(["a", "b", "c"], rows),
                "f": _rng.random(rows) < 0.5,
            }
        )
    )
    for rows in (40, 3000)
]

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from([0, 1]),
    rows=st.lists(
        st.dictionaries(st.sampled_from(["x", "k", "c", "f", "other"]), values, max_size=5),
        max_size=30,
    ),
)
def test_any_rows_give_a_verdict_or_a_clear_error(
    which: int, rows: list[dict[str, object]]
) -> None:
    profile = PROFILES[which]
    window = WindowSummary.empty(profile)
    try:
        window.add_rows(rows)
    except DriftInputError:
        return
    again = WindowSummary.from_bytes(window.to_bytes(), profile)
    if again.count == 0:
        return
    verdict = detect(profile, again)
    assert 0.0 <= verdict.drift_share <= 1.0
    for result in verdict.features:
        assert result.method is not None or not result.drifted
        assert 0.0 <= result.nan_share <= 1.0
        if result.method is not None:
            assert not math.isnan(result.score)


@settings(max_examples=60, deadline=None)
@given(
    column=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        min_size=1,
        max_size=50,
    )
)
def test_any_numeric_reference_column_profiles_or_fails_clearly(column: list[float | None]) -> None:
    try:
        profile = ReferenceProfile.from_table(pa.table({"x": pa.array(column, pa.float64())}))
    except DriftInputError:
        return
    window = WindowSummary.empty(profile).add({"x": [0.0, 1.0, None]})
    verdict = detect(profile, window)
    assert len(verdict.features) == 1
