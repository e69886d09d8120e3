"""Data makers for the drift statistics tests, and Evidently as the reference.

Evidently 0.7.23 is a dev dependency only; `evidently_columns` runs its `DataDriftPreset`
on pandas frames with the column kinds given explicitly (as our profiles get them) and
returns, per column, the test it chose, its score and whether it called drift.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from mlplane_drift.detect import DriftConfig, DriftVerdict, detect
from mlplane_drift.methods import StatTest
from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
from mlplane_drift.window import WindowSummary

EVIDENTLY_METHODS = {
    "K-S p_value": StatTest.KS,
    "chi-square p_value": StatTest.CHI_SQUARE,
    "Z-test p_value": StatTest.Z,
    "Wasserstein distance (normed)": StatTest.WASSERSTEIN,
    "Jensen-Shannon distance": StatTest.JENSEN_SHANNON,
    "PSI": StatTest.PSI,
}


@dataclass(frozen=True)
class EvidentlyColumn:
    method: StatTest
    score: float
    threshold: float
    drifted: bool


def evidently_drift_rule(method: StatTest, score: float, threshold: float) -> bool:
    # Evidently's own comparisons, from its stattests modules.
    if method == StatTest.KS:
        return score <= threshold
    if method in (StatTest.CHI_SQUARE, StatTest.Z):
        return score < threshold
    return score >= threshold


def evidently_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> dict[str, EvidentlyColumn]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=list(numeric), categorical_columns=list(categorical)
        )
        snapshot = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        metrics = snapshot.dict()["metrics"]
    columns: dict[str, EvidentlyColumn] = {}
    for metric in metrics:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method = EVIDENTLY_METHODS[config["method"]]
        score = float(metric["value"])
        threshold = float(config["threshold"])
        columns[config["column"]] = EvidentlyColumn(
            method, score, threshold, evidently_drift_rule(method, score, threshold)
        )
    return columns


def mlplane_verdict(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, FeatureKind],
    config: DriftConfig | None = None,
) -> DriftVerdict:
    specs = [FeatureSpec(name, kind) for name, kind in kinds.items()]
    profile = ReferenceProfile.from_table(
        pa.Table.from_pandas(reference, preserve_index=False), specs
    )
    window = WindowSummary.empty(profile).add(pa.Table.from_pandas(current, preserve_index=False))
    return detect(profile, window, config)


def make_frame(
    rng: np.random.Generator,
    rows: int,
    numeric: int = 3,
    categorical: int = 2,
    binary: int = 1,
    shift: Sequence[str] = (),
) -> pd.DataFrame:
    """Columns n0.., c0.., b0..; a column named in `shift` is drawn from a moved distribution."""
    data: dict[str, object] = {}
    for i in range(numeric):
        name = f"n{i}"
        moved = name in shift
        data[name] = rng.normal(0.6 if moved else 0.0, 1.0, rows) * (10.0**i)
    for i in range(categorical):
        name = f"c{i}"
        p = [0.15, 0.25, 0.3, 0.3] if name in shift else [0.4, 0.3, 0.2, 0.1]
        data[name] = rng.choice(["red", "green", "blue", "gold"], size=rows, p=p)
    for i in range(binary):
        name = f"b{i}"
        rate = 0.5 if name in shift else 0.3
        data[name] = rng.random(rows) < rate
    return pd.DataFrame(data)


def kinds_of(frame: pd.DataFrame) -> dict[str, FeatureKind]:
    kinds: dict[str, FeatureKind] = {}
    for name in frame.columns:
        if name.startswith("n"):
            kinds[name] = FeatureKind.NUMERIC
        elif name.startswith("b"):
            kinds[name] = FeatureKind.BINARY
        else:
            kinds[name] = FeatureKind.CATEGORICAL
    return kinds
