"""Prediction samples as columns: what a window summary is built from.

Samples arrive row by row (`{"features": {...}, "prediction": ..., "label": ...}`);
summaries take columns. `prediction` and `label` become columns of those names when
the reference profile has features so named (a profile built on a dataset holding the
model's outputs), and are ignored otherwise. A feature of the profile missing from a
sample is a missing value; a feature the profile does not know is refused, because it
means the sender and the reference disagree on the schema.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from mlplane_drift.domain.errors import InvalidSamples

OUTPUT_COLUMNS = ("prediction", "label")
MAX_NAMED = 10


@dataclass(frozen=True, slots=True)
class SampleRow:
    features: dict[str, Any]
    prediction: Any = None
    label: Any = None


def columns_of(
    rows: Sequence[SampleRow], profile_features: Collection[str]
) -> dict[str, list[Any]]:
    """The samples as `{feature: values}` over the profile's features (None: missing).

    Raises `InvalidSamples` for no samples, a feature the profile does not know, or a
    batch in which every value is missing.
    """
    if not rows:
        raise InvalidSamples("the batch holds no samples")
    known = set(profile_features)
    unknown = sorted({name for row in rows for name in row.features} - known)
    if unknown:
        shown = ", ".join(unknown[:MAX_NAMED]) + (" ..." if len(unknown) > MAX_NAMED else "")
        raise InvalidSamples(
            f"features not in the reference profile: {shown} "
            f"(the profile has {len(known)} features)",
            unknown_features=unknown[:100],
        )
    names = sorted(known)
    columns: dict[str, list[Any]] = {name: [None] * len(rows) for name in names}
    outputs = [name for name in OUTPUT_COLUMNS if name in known]
    for index, row in enumerate(rows):
        for name, value in row.features.items():
            columns[name][index] = value
        for name in outputs:
            if name not in row.features:
                columns[name][index] = getattr(row, name)
    if all(value is None for values in columns.values() for value in values):
        raise InvalidSamples("every value of the batch is missing")
    absent = [
        name
        for name, values in columns.items()
        if name not in OUTPUT_COLUMNS and all(value is None for value in values)
    ]
    if absent and len(rows) > 1:
        # One sample may lack a value; a feature no sample names is a schema mismatch.
        shown = ", ".join(absent[:MAX_NAMED]) + (" ..." if len(absent) > MAX_NAMED else "")
        raise InvalidSamples(
            f"features of the reference profile no sample has a value for: {shown}",
            missing_features=absent[:100],
        )
    return columns
