"""Reading feature columns out of Arrow data: types, missing values, category keys.

Shared by the reference profile and the window summary so that both sides see a value the
same way: a number is missing when it is null, NaN or infinite (Evidently drops all three
before testing); a category is missing when it is null (or NaN for numbers used as
categories). Categories are keyed by a canonical string so that the integer 1 and the float
1.0 are one category, and booleans are "true"/"false".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlplane_drift.errors import DriftInputError

ValueType = Literal["string", "bool", "number"]
FloatArray = npt.NDArray[np.float64]


def value_type_of(arrow_type: pa.DataType) -> ValueType | None:
    """The kind of values an Arrow type holds, or None for types drift cannot test."""
    if pa.types.is_dictionary(arrow_type):
        return value_type_of(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_null(arrow_type):
        # A column of nothing but nulls (JSON `null` everywhere): fits any feature.
        return None
    return None


def as_table(data: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """An Arrow table from a table or from columns given as Python sequences."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if not isinstance(data, Mapping):
        raise DriftInputError("data must be an Arrow table or a mapping of column name to values")
    lengths = {len(values) for values in data.values()}
    if len(lengths) > 1:
        raise DriftInputError("columns have different lengths")
    try:
        return pa.Table.from_pydict({str(name): list(values) for name, values in data.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise DriftInputError(f"columns could not be read: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column


def check_type(name: str, column: pa.ChunkedArray, expected: ValueType) -> None:
    """Raise `DriftInputError` unless the column holds values of the expected kind."""
    if pa.types.is_null(column.type):
        return
    found = value_type_of(column.type)
    if found != expected:
        shown = found or str(column.type)
        raise DriftInputError(
            f"feature {name!r} expects {expected} values but the data holds {shown}",
            feature=name,
        )


def numeric_values(name: str, column: pa.ChunkedArray) -> tuple[FloatArray, int]:
    """The finite values of a numeric column as float64, and how many were missing."""
    check_type(name, column, "number")
    if pa.types.is_null(column.type):
        return np.empty(0, dtype=np.float64), len(column)
    column = _decoded(column)
    floats = pc.cast(column, pa.float64(), safe=False)
    values = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values, 0
    kept = values[finite]
    return kept, len(values) - len(kept)


# Longer category values are cut and tagged with a hash of the whole, so a stray blob of text
# cannot make a profile or window summary large while distinct values stay distinct.
MAX_KEY_CHARS = 200


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    tag = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{key[: MAX_KEY_CHARS - 20]}...#{tag}"


def category_key(value: Any) -> str:
    """The canonical key of one category value (see the module docstring)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer() and abs(number) < 2**63:
            return str(int(number))
        return repr(number)
    return _bounded(str(value))


def category_counts(
    name: str, column: pa.ChunkedArray, expected: ValueType
) -> tuple[dict[str, int], int]:
    """Counts per category key of a column, and how many values were missing."""
    check_type(name, column, expected)
    if pa.types.is_null(column.type):
        return {}, len(column)
    column = _decoded(column)
    missing = column.null_count
    present = pc.drop_null(column)
    if expected == "number" and pa.types.is_floating(column.type):
        nan = pc.is_nan(present)
        missing += int(pc.sum(nan).as_py() or 0)
        present = pc.filter(present, pc.invert(nan))
    counts: dict[str, int] = {}
    if len(present) == 0:
        return counts, missing
    table = pc.value_counts(present)
    for value, count in zip(
        table.field("values").to_pylist(), table.field("counts").to_pylist(), strict=True
    ):
        key = category_key(value)
        counts[key] = counts.get(key, 0) + int(count)
    return counts, missing
