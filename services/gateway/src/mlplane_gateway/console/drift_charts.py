"""Drift reports shaped for the console's charts. No I/O.

From the drift service's JSON reports (newest first, as it lists them): per feature,
the latest report's reference and current distributions (one bar pair per bin or
category), and the feature's score over the reports' windows, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FeatureChart:
    feature: str
    kind: str
    method: str | None
    drifted: bool
    score: float | None
    threshold: float | None
    labels: list[str]
    reference: list[float]
    current: list[float]
    times: list[str] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "labels": self.labels,
            "reference": self.reference,
            "current": self.current,
            "times": self.times,
            "scores": self.scores,
            "threshold": self.threshold,
        }


def bin_labels(distribution: Mapping[str, Any]) -> list[str]:
    """A label per bar: `low to high` for a numeric bin, the value for a category."""
    bins = distribution.get("bins")
    if isinstance(bins, list) and bins:
        return [_range_label(b) for b in bins]
    categories = distribution.get("categories")
    if isinstance(categories, list):
        return [str(c)[:40] for c in categories]
    return []


def _range_label(bounds: Any) -> str:
    if isinstance(bounds, list | tuple) and len(bounds) == 2:
        return f"{_short(bounds[0])} to {_short(bounds[1])}"
    return str(bounds)[:40]


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else str(value)[:16]


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) if isinstance(v, int | float) else 0.0 for v in values]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def feature_charts(reports: Sequence[Mapping[str, Any]]) -> list[FeatureChart]:
    """One chart per feature of the newest report, with its score in every report
    (None where a report did not judge it); drifted features first."""
    if not reports:
        return []
    latest = reports[0]
    oldest_first = list(reversed(reports))
    times = [
        str((r.get("window") or {}).get("end") or r.get("created_at") or "") for r in oldest_first
    ]
    charts: list[FeatureChart] = []
    for entry in latest.get("features") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("feature"), str):
            continue
        name = entry["feature"]
        distribution = entry.get("distribution") or {}
        reference = _numbers(distribution.get("reference"))
        current = _numbers(distribution.get("current"))
        labels = bin_labels(distribution)[: len(reference)]
        scores = [_score_of(report, name) for report in oldest_first]
        charts.append(
            FeatureChart(
                feature=name,
                kind=str(entry.get("kind") or ""),
                method=entry.get("method") if isinstance(entry.get("method"), str) else None,
                drifted=bool(entry.get("drifted")),
                score=_number(entry.get("score")),
                threshold=_number(entry.get("threshold")),
                labels=labels,
                reference=reference[: len(labels)] if labels else reference,
                current=current[: len(labels)] if labels else current,
                times=times,
                scores=scores,
            )
        )
    charts.sort(key=lambda chart: (not chart.drifted, chart.feature))
    return charts


def _score_of(report: Mapping[str, Any], feature: str) -> float | None:
    for entry in report.get("features") or []:
        if isinstance(entry, Mapping) and entry.get("feature") == feature:
            return _number(entry.get("score"))
    return None
