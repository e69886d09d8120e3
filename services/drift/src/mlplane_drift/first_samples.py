"""A reference built from a version's first samples, for teams that have no training
dataset at hand (`MLPLANE_DRIFT_REFERENCE_FROM_SAMPLES`).

Until the reference exists each batch is kept as it came, one Arrow IPC stream per
batch (features only: predictions and labels are outputs, not inputs to compare);
the batch that reaches the count builds the profile from all of them. Pure and
synchronous: callers run these off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from mlplane_drift.domain.errors import InvalidSamples
from mlplane_drift.domain.samples import SampleRow
from mlplane_drift.errors import DriftInputError
from mlplane_drift.profile import ReferenceProfile


def batch_bytes(rows: Sequence[SampleRow]) -> tuple[bytes, int]:
    """The batch as one Arrow IPC stream, and its row count.

    Raises `InvalidSamples` for an empty batch, one with nothing but missing values, or
    a feature holding values of different types.
    """
    if not rows:
        raise InvalidSamples("the batch holds no samples")
    if all(value is None for row in rows for value in row.features.values()):
        raise InvalidSamples("every value of the batch is missing")
    try:
        table = pa.Table.from_pylist([row.features for row in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidSamples(f"the samples' features do not have one type each: {exc}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), table.num_rows


def profile_of(batches: Sequence[bytes]) -> ReferenceProfile:
    """The profile of every kept batch together.

    Raises `InvalidSamples` when they disagree on a feature's type or hold no usable
    feature.
    """
    tables = [pa.ipc.open_stream(blob).read_all() for blob in batches]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidSamples(
            f"the first samples disagree on their features' types: {exc}"
        ) from None
    # A feature no kept sample had a value for tells nothing about its distribution.
    usable = [name for name in table.column_names if table.column(name).null_count < table.num_rows]
    try:
        return ReferenceProfile.from_table(table.select(usable))
    except DriftInputError as exc:
        raise InvalidSamples(f"the first samples make no reference: {exc.detail}") from None
