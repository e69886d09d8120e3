"""Reference profiles from tables, Parquet and CSV, and their bytes."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from mlplane_drift.errors import CorruptSummary
from mlplane_drift.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ReferenceProfile,
)


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(rows)
    score = rng.normal(0, 1, rows)
    score[::97] = np.nan
    return pa.table(
        {
            "score": score,
            "count": rng.integers(0, 50, rows),
            "two": rng.choice([3, 7], rows),
            "flag": rng.random(rows) < 0.2,
            "city": pa.array(rng.choice(["oslo", "rome", "lima"], rows)).dictionary_encode(),
            "plan": rng.choice(["free", "pro"], rows),
        }
    )


def test_kinds_are_inferred_from_arrow_types_and_two_values_make_binary() -> None:
    profile = ReferenceProfile.from_table(_table(5000))
    kinds = {spec.name: spec.kind for spec in profile.features}
    assert kinds == {
        "score": FeatureKind.NUMERIC,
        "count": FeatureKind.NUMERIC,
        "two": FeatureKind.BINARY,
        "flag": FeatureKind.BINARY,
        "city": FeatureKind.CATEGORICAL,
        "plan": FeatureKind.BINARY,
    }
    score = profile.profiles["score"]
    assert isinstance(score, NumericProfile)
    assert score.missing == len(range(0, 5000, 97))
    assert score.exact
    two = profile.profiles["two"]
    assert isinstance(two, CategoricalProfile)
    assert two.categories == ("3", "7")


def _same_profile(a: ReferenceProfile, b: ReferenceProfile) -> None:
    assert a.features == b.features
    assert a.rows == b.rows
    for name, left in a.profiles.items():
        right = b.profiles[name]
        if isinstance(left, NumericProfile) and isinstance(right, NumericProfile):
            assert np.array_equal(left.values, right.values)
            assert np.array_equal(left.weights, right.weights)
            assert np.array_equal(left.edges, right.edges)
            assert (left.count, left.missing, left.minimum, left.maximum) == (
                right.count,
                right.missing,
                right.minimum,
                right.maximum,
            )
            assert left.std == pytest.approx(right.std, rel=1e-12)
        else:
            assert isinstance(left, CategoricalProfile)
            assert isinstance(right, CategoricalProfile)
            assert left.categories == right.categories
            assert np.array_equal(left.counts, right.counts)


def test_parquet_and_csv_read_in_batches_give_the_table_profile() -> None:
    table = _table(150_000)
    expected = ReferenceProfile.from_table(table)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=20_000)
    _same_profile(ReferenceProfile.from_parquet(buffer.getvalue()), expected)
    _same_profile(ReferenceProfile.from_parquet(io.BytesIO(buffer.getvalue())), expected)

    plain = table.set_column(4, "city", table.column("city").cast(pa.string()))
    text = io.BytesIO()
    pa_csv.write_csv(plain, text)
    from_csv = ReferenceProfile.from_csv(text.getvalue())
    # CSV writes floats as text; the round trip is exact for float64 in Arrow's writer.
    _same_profile(from_csv, ReferenceProfile.from_table(plain))


def test_profile_bytes_round_trip_and_digest_is_stable() -> None:
    profile = ReferenceProfile.from_table(_table(3000))
    blob = profile.to_bytes()
    again = ReferenceProfile.from_bytes(blob)
    _same_profile(again, profile)
    assert again.digest == profile.digest
    assert ReferenceProfile.from_table(_table(3000)).digest == profile.digest


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-7],
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + bytes([99]) + b[5:],
        lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:],
        lambda b: b"",
    ],
)
def test_corrupt_profile_bytes_raise_corrupt_summary(mangle: object) -> None:
    blob = ReferenceProfile.from_table(_table(1000)).to_bytes()
    with pytest.raises(CorruptSummary):
        ReferenceProfile.from_bytes(mangle(blob))  # type: ignore[operator]


def test_a_decompression_bomb_is_refused() -> None:
    import zlib

    bomb = b"MLDP" + bytes([1]) + zlib.compress(b"\0" * (600 * 1024 * 1024), 9)
    with pytest.raises(CorruptSummary, match="size limit"):
        ReferenceProfile.from_bytes(bomb)


def test_reference_past_the_sample_limit_keeps_a_bounded_sample_with_its_error() -> None:
    rng = np.random.default_rng(9)
    profile = ReferenceProfile.from_table(pa.table({"x": rng.normal(0, 1, 250_000)}))
    numeric = profile.profiles["x"]
    assert isinstance(numeric, NumericProfile)
    assert len(numeric.values) <= 100_000
    assert 0 < numeric.rank_error <= 0.5 * 250_000 / 100_000**2 + 0.5 / 100_000 + 1e-12
    assert numeric.weights.sum() == pytest.approx(250_000)
    assert len(numeric.edges) <= 1024


def test_profile_from_rows_infers_features_from_the_keys_seen() -> None:
    rows = [
        {"age": 30 + i % 7, "plan": "pro" if i % 3 else "free", "vip": i % 5 == 0}
        for i in range(60)
    ]
    rows.append({"age": 41})  # plan and vip missing here
    profile = ReferenceProfile.from_rows(rows)
    assert profile.names == ("age", "plan", "vip")
    assert [spec.kind for spec in profile.features] == [
        FeatureKind.NUMERIC,
        FeatureKind.BINARY,
        FeatureKind.BINARY,
    ]
    plan = profile.profiles["plan"]
    assert isinstance(plan, CategoricalProfile)
    assert plan.missing == 1


def test_very_long_category_values_are_cut_but_stay_distinct() -> None:
    long_a, long_b = "a" * 5000 + "1", "a" * 5000 + "2"
    profile = ReferenceProfile.from_table(pa.table({"text": [long_a, long_b, "short"] * 10}))
    text = profile.profiles["text"]
    assert isinstance(text, CategoricalProfile)
    assert len(text.categories) == 3
    assert max(len(key) for key in text.categories) <= 200
