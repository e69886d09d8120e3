"""Drift benchmark: mlplane's drift verdict next to Evidently's DataDriftPreset, same data.

Data (seeded, the same in every process): 20 numeric features (normal, lognormal, uniform,
integer counts, at different scales) and 5 categorical ones (3 to 12 string categories);
the current data shifts 5 numeric features (by 0.4 standard deviations or a 1.5x spread)
and 2 categorical ones (their category shares). Cases:

- `large`: reference 100,000 rows, current 1,000,000 rows (Wasserstein, Jensen-Shannon);
- `small`: reference 1,000 rows, current 10,000 rows (KS, chi-square).

With `--quick` the large case is 5,000 and 20,000 rows, the small one 1,000 and 5,000.

Each side runs in its own child process, which builds the pandas frames, warms up on 300
rows, and then measures: wall time, and peak resident memory above what the process held
with the data loaded (Linux: the high-water mark reset through /proc/self/clear_refs).

- Evidently 0.7.23: `Report([DataDriftPreset()])` on `Dataset.from_pandas` with the
  column kinds given, then the per-column drift results read from the snapshot.
- mlplane: the frames converted to Arrow (counted), `ReferenceProfile.from_table`, the
  current rows added to a `WindowSummary` in batches of 100,000 as intake would, `detect`.

Both report the columns they flag; `same_columns` says whether the sets match, and
`max_score_difference` is the largest difference between the two sides' per-column scores
(p-values or distances). `ratio` =
Evidently's wall time / mlplane's, for the large case; the target is >= 30, with mlplane's
extra peak memory at most a third of Evidently's.

    python bench/drift.py [--quick]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = 20261205
NUMERIC = 20
CATEGORICAL = 5
SHIFTED = ("n03", "n07", "n11", "n15", "n19", "c1", "c3")
TARGET_RATIO = 30.0
TARGET_MEMORY_SHARE = 1 / 3
CASES = {
    "large": (100_000, 1_000_000),
    "large_quick": (5_000, 20_000),
    "small": (1_000, 10_000),
    "small_quick": (1_000, 5_000),
}
WINDOW_BATCH = 100_000


def make_frames(reference_rows: int, current_rows: int) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)

    def frame(rows: int, current: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i in range(NUMERIC):
            name = f"n{i:02d}"
            moved = current and name in SHIFTED
            kind = i % 4
            if kind == 0:
                values = rng.normal(0.4 if moved else 0.0, 1.0, rows) * 10.0 ** (i % 3)
            elif kind == 1:
                values = rng.lognormal(0.0, 0.6 * (1.5 if moved else 1.0), rows)
            elif kind == 2:
                values = rng.uniform(-1.0, 1.0, rows) + (0.23 if moved else 0.0)
            else:
                values = rng.poisson(30.0 if not moved else 32.5, rows).astype(np.float64)
            data[name] = values
        for i in range(CATEGORICAL):
            name = f"c{i}"
            levels = [f"level-{j}" for j in range(3 + 2 * i)]
            weights = np.linspace(1.0, 3.0, len(levels))
            if current and name in SHIFTED:
                weights = weights[::-1] ** 2
            data[name] = rng.choice(levels, size=rows, p=weights / weights.sum())
        return pd.DataFrame(data)

    return frame(reference_rows, False), frame(current_rows, True)


def _rss_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_evidently(reference: Any, current: Any) -> dict[str, tuple[float, bool]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=[c for c in reference.columns if c.startswith("n")],
            categorical_columns=[c for c in reference.columns if c.startswith("c")],
        )
        snapshot = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        columns: dict[str, tuple[float, bool]] = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if not config["type"].endswith("ValueDrift"):
                continue
            score, threshold = float(metric["value"]), float(config["threshold"])
            method = config["method"]
            if method == "K-S p_value":
                drifted = score <= threshold
            elif method.endswith("p_value"):
                drifted = score < threshold
            else:
                drifted = score >= threshold
            columns[config["column"]] = (score, bool(drifted))
        return columns


def run_mlplane(reference: Any, current: Any) -> dict[str, tuple[float, bool]]:
    import pyarrow as pa
    from mlplane_drift.detect import detect
    from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
    from mlplane_drift.window import WindowSummary

    specs = [
        FeatureSpec(c, FeatureKind.NUMERIC if c.startswith("n") else FeatureKind.CATEGORICAL)
        for c in reference.columns
    ]
    profile = ReferenceProfile.from_table(
        pa.Table.from_pandas(reference, preserve_index=False), specs
    )
    window = WindowSummary.empty(profile)
    for start in range(0, len(current), WINDOW_BATCH):
        chunk = current.iloc[start : start + WINDOW_BATCH]
        window.add(pa.Table.from_pandas(chunk, preserve_index=False))
    verdict = detect(profile, window)
    return {result.feature: (result.score, result.drifted) for result in verdict.features}


def child(side: str, case: str) -> dict[str, Any]:
    reference, current = make_frames(*CASES[case])
    run = run_evidently if side == "evidently" else run_mlplane
    # Warm up on a few rows first (imports, lazily loaded modules), as a running service
    # would be; the measured run starts from the same state on both sides.
    run(reference.head(300), current.head(300))
    baseline = _rss_kib("VmRSS")
    peak_reset = _reset_peak()
    started = time.perf_counter()
    columns = run(reference, current)
    seconds = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    return {
        "seconds": round(seconds, 3),
        "peak_mb": round(peak / 1024, 1),
        "extra_peak_mb": round(max(peak - baseline, 0) / 1024, 1) if peak_reset else None,
        "flagged": sorted(name for name, (_, drifted) in columns.items() if drifted),
        "scores": {name: score for name, (score, _) in columns.items()},
    }


def measure(side: str, case: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", side, "--case", case],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    figures: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return figures


def main(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for case in ("small_quick", "large_quick") if quick else ("small", "large"):
        ours = measure("mlplane", case)
        theirs = measure("evidently", case)
        reference_rows, current_rows = CASES[case]
        memory_share = (
            ours["extra_peak_mb"] / theirs["extra_peak_mb"]
            if ours["extra_peak_mb"] is not None and theirs["extra_peak_mb"]
            else None
        )
        differences = [
            abs(ours["scores"][name] - theirs["scores"][name]) for name in theirs["scores"]
        ]
        del ours["scores"], theirs["scores"]
        results[case] = {
            "reference_rows": reference_rows,
            "current_rows": current_rows,
            "mlplane": ours,
            "evidently": theirs,
            "same_columns": ours["flagged"] == theirs["flagged"],
            "max_score_difference": float(f"{max(differences):.3g}"),
            "expected_columns": sorted(SHIFTED),
            "ratio": round(theirs["seconds"] / ours["seconds"], 1),
            "memory_share": None if memory_share is None else round(memory_share, 3),
        }
    headline = results["large_quick" if quick else "large"]
    return {
        "benchmark": "drift",
        "quick": quick,
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL, "shifted": len(SHIFTED)},
        "cases": results,
        "mlplane_seconds": headline["mlplane"]["seconds"],
        "evidently_seconds": headline["evidently"]["seconds"],
        "ratio": headline["ratio"],
        "target_ratio": TARGET_RATIO,
        "memory_share": headline["memory_share"],
        "target_memory_share": round(TARGET_MEMORY_SHARE, 3),
        "same_columns": all(case["same_columns"] for case in results.values()),
        # The targets are for the full case; a quick run is a smoke test of the same path.
        "met": None
        if quick
        else (
            headline["ratio"] >= TARGET_RATIO
            and headline["memory_share"] is not None
            and headline["memory_share"] <= TARGET_MEMORY_SHARE
            and headline["same_columns"]
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller large case (< 60 s)")
    parser.add_argument("--child", choices=["mlplane", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.case)))
    else:
        print(json.dumps(main(args.quick)))
