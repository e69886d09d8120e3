"""The service's pure rules: when windows close, samples as columns, HTML escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlplane_drift.domain.errors import InvalidSamples, InvalidWindowPolicy
from mlplane_drift.domain.samples import SampleRow, columns_of
from mlplane_drift.domain.windows import WindowPolicy, is_due
from mlplane_drift.render.html import report_html

AT = datetime(2026, 12, 5, tzinfo=UTC)


class TestWindowPolicy:
    def test_a_window_closes_by_count_or_time_whichever_comes_first(self) -> None:
        policy = WindowPolicy(max_count=100, max_seconds=60)
        assert policy.closes_at(AT) == AT + timedelta(seconds=60)
        assert not policy.is_full(99)
        assert policy.is_full(100)
        assert policy.is_full(250)  # a batch is never split: it may take a window past

    def test_a_count_only_window_has_no_time(self) -> None:
        assert WindowPolicy(max_count=10, max_seconds=None).closes_at(AT) is None
        assert not is_due(None, AT)

    def test_a_window_is_due_at_its_time(self) -> None:
        assert not is_due(AT, AT - timedelta(microseconds=1))
        assert is_due(AT, AT)

    @pytest.mark.parametrize(
        ("count", "seconds"), [(None, None), (0, None), (None, 0.0), (None, -1.0)]
    )
    def test_a_policy_that_never_closes_is_refused(
        self, count: int | None, seconds: float | None
    ) -> None:
        with pytest.raises(InvalidWindowPolicy):
            WindowPolicy(count, seconds)


class TestColumns:
    def test_samples_become_columns_over_the_profiles_features(self) -> None:
        rows = [
            SampleRow({"a": 1.0, "b": "x"}, prediction=0.3),
            SampleRow({"a": 2.0}, prediction=0.9, label=True),
        ]
        assert columns_of(rows, ["a", "b", "prediction"]) == {
            "a": [1.0, 2.0],
            "b": ["x", None],
            "prediction": [0.3, 0.9],
        }

    def test_a_feature_the_profile_does_not_know_is_refused_by_name(self) -> None:
        with pytest.raises(InvalidSamples, match="not in the reference profile: zz"):
            columns_of([SampleRow({"a": 1.0, "zz": 2.0})], ["a"])

    def test_a_batch_of_missing_values_only_is_refused(self) -> None:
        with pytest.raises(InvalidSamples, match="every value of the batch is missing"):
            columns_of([SampleRow({"a": None}), SampleRow({})], ["a", "b"])

    def test_a_feature_no_sample_has_is_a_schema_mismatch(self) -> None:
        with pytest.raises(InvalidSamples, match="no sample has a value for: b"):
            columns_of([SampleRow({"a": 1.0}), SampleRow({"a": 2.0})], ["a", "b"])

    def test_an_empty_batch_is_refused(self) -> None:
        with pytest.raises(InvalidSamples, match="no samples"):
            columns_of([], ["a"])


def test_the_html_report_escapes_what_senders_named() -> None:
    document = {
        "model": "fraud",
        "version": 1,
        "environment": "prod",
        "window": {"start": "s", "end": "e", "samples": 3},
        "reference": {"rows": 10},
        "drift_share": 1.0,
        "dataset_drifted": True,
        "severity": "severe",
        "alert_fired": True,
        "features": [
            {
                "feature": "<script>x</script>",
                "kind": "categorical",
                "method": "chi_square",
                "score": 0.01,
                "threshold": 0.05,
                "psi": 0.3,
                "drifted": True,
                "note": "",
                "distribution": {
                    "kind": "categorical",
                    "categories": ["<b>a</b>"],
                    "reference": [1.0],
                    "current": [1.0],
                },
            }
        ],
    }
    html = report_html(document)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>a</b>" not in html
