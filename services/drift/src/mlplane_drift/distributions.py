"""Each feature's reference and current distribution on common bins, for people: what
the HTML and PNG reports draw.

Numeric: at most `MAX_BINS` bins whose boundaries are reference bin edges (so the
window's counts, kept per edge cell, add up exactly into them); values below the
reference minimum fall in the first bin, above the maximum in the last. Categorical:
the reference's most frequent categories, the rest as "(other)", and the window's
categories the reference never saw as "(unseen)". Shares of non-missing values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplane_drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlplane_drift.window import CategoricalWindow, NumericWindow, WindowSummary

MAX_BINS = 20
MAX_CATEGORIES = 20


def _shares(counts: Any) -> list[float]:
    total = float(np.sum(counts))
    if total <= 0:
        return [0.0 for _ in counts]
    return [round(float(c) / total, 6) for c in counts]


def numeric(profile: NumericProfile, window: NumericWindow) -> dict[str, Any]:
    edges = profile.edges
    m = len(edges)
    if m == 0:
        return {"kind": "numeric", "bins": [], "reference": [], "current": []}
    if m == 1:  # one reference value: one bin holds everything
        return {
            "kind": "numeric",
            "bins": [[float(edges[0]), float(edges[0])]],
            "reference": [1.0],
            "current": [1.0 if window.count else 0.0],
            "missing": {"reference": profile.missing, "current": window.missing},
        }
    points = min(MAX_BINS, m - 1) + 1
    picks = np.unique(np.linspace(0, m - 1, num=points).round().astype(np.int64))
    bounds = edges[picks]
    # Reference: weighted values into [b_j, b_{j+1}), the last bin closed.
    ref_counts, _ = np.histogram(profile.values, bins=bounds, weights=profile.weights)
    # Window: cells 2i (below edge i) and 2i + 1 (edge i); bin j takes the cells from
    # edge b_j up to just below edge b_{j+1}; the first also takes what lies below e_0,
    # the last edge b_B itself and everything above it.
    cells = window.counts
    current = []
    for j in range(len(picks) - 1):
        start = 2 * int(picks[j]) + 1 if j > 0 else 0
        stop = 2 * int(picks[j + 1]) + 1
        if j == len(picks) - 2:
            stop = len(cells)
        current.append(int(cells[start:stop].sum()))
    bins = [[float(bounds[j]), float(bounds[j + 1])] for j in range(len(bounds) - 1)]
    return {
        "kind": "numeric",
        "bins": bins,
        "reference": _shares(ref_counts),
        "current": _shares(current),
        "missing": {"reference": profile.missing, "current": window.missing},
    }


def categorical(profile: CategoricalProfile, window: CategoricalWindow) -> dict[str, Any]:
    order = np.argsort(-profile.counts, kind="stable")[:MAX_CATEGORIES]
    labels = [profile.categories[i] for i in order]
    ref = [int(profile.counts[i]) for i in order]
    cur = [int(window.counts[i]) for i in order]
    rest = [i for i in range(len(profile.categories)) if i not in set(order.tolist())]
    other_ref = (
        int(profile.counts[rest].sum()) + profile.other_count if rest or profile.other_count else 0
    )
    other_cur = int(window.counts[rest].sum()) if rest else 0
    if other_ref or other_cur:
        labels.append("(other)")
        ref.append(other_ref)
        cur.append(other_cur)
    if window.unseen_count:
        labels.append("(unseen)")
        ref.append(0)
        cur.append(window.unseen_count)
    return {
        "kind": "categorical",
        "categories": labels,
        "reference": _shares(ref),
        "current": _shares(cur),
        "missing": {"reference": profile.missing, "current": window.missing},
    }


def of_feature(profile: ReferenceProfile, window: WindowSummary, name: str) -> dict[str, Any]:
    """The two distributions of feature `name` on common bins (see the module docstring)."""
    feature = profile.profiles[name]
    current = window.features[name]
    if isinstance(feature, NumericProfile) and isinstance(current, NumericWindow):
        return numeric(feature, current)
    if isinstance(feature, CategoricalProfile) and isinstance(current, CategoricalWindow):
        return categorical(feature, current)
    return {"kind": "unknown"}
