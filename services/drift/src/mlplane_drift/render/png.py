"""A report as one PNG: a grid with each feature's reference and current distribution
(matplotlib on its Agg backend: no display, safe in threads)."""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_FEATURES = 48
COLUMNS = 3


def _labels(distribution: dict[str, Any]) -> list[str]:
    if distribution.get("kind") == "numeric":
        return [f"{low:.3g}" for low, _ in distribution["bins"]]
    return [str(c)[:12] for c in distribution.get("categories", [])]


def report_png(document: dict[str, Any]) -> bytes:
    """The report `document` as PNG bytes (the first `MAX_FEATURES` features, drifted
    ones first). Builds its own `Figure` (no pyplot state), so concurrent renders are safe."""
    features = sorted(document["features"], key=lambda f: (not f["drifted"], f["feature"]))
    features = features[:MAX_FEATURES] or []
    rows = max(math.ceil(len(features) / COLUMNS), 1)
    figure = Figure(figsize=(COLUMNS * 4.2, rows * 2.8 + 0.6), dpi=90)
    FigureCanvasAgg(figure)
    figure.suptitle(
        f"{document['model']} v{document['version']} in {document['environment']}: "
        f"{document['window']['samples']} samples, drift share "
        f"{document['drift_share'] or 0:.2f}"
        f"{' (drifted)' if document['dataset_drifted'] else ''}"
    )
    for index, feature in enumerate(features):
        axes = figure.add_subplot(rows, COLUMNS, index + 1)
        distribution = feature["distribution"]
        reference = distribution.get("reference") or []
        current = distribution.get("current") or []
        positions = list(range(len(reference)))
        axes.bar([p - 0.2 for p in positions], reference, width=0.4, label="reference")
        axes.bar([p + 0.2 for p in positions], current, width=0.4, label="current")
        labels = _labels(distribution)
        step = max(len(labels) // 6, 1)
        axes.set_xticks(positions[::step], labels[::step], fontsize=7, rotation=30)
        state = "DRIFTED" if feature["drifted"] else "stable"
        axes.set_title(f"{feature['feature'][:40]} ({feature['method']}, {state})", fontsize=9)
        if index == 0:
            axes.legend(fontsize=7)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
