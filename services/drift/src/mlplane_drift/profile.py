"""The reference profile of a model version: what each feature looked like at training time.

Per numeric feature the profile keeps what KS, Wasserstein and PSI need:

- a sorted weighted sample, exact (every distinct value with its count) up to
  `SAMPLE_LIMIT` = 100,000 distinct values; past that a deterministic quantile summary of
  100,000 points whose CDF is within `rank_error` of the data's (see `stats_quantiles`);
- exact count, missing count, min, max, mean and population standard deviation (the
  Wasserstein normalisation Evidently uses);
- the bin edges window summaries count against: every distinct value when there are at most
  `MAX_EDGES` = 1,024 of them (then KS from window counts is exact), else 1,024 quantiles.

Per categorical or binary feature it keeps the category frequencies: the `MAX_CATEGORIES` =
10,000 most frequent categories exactly, the rest added up in `other_count`.

Profiles are built from Arrow data read in record batches, so memory stays bounded for big
Parquet or CSV files; the same rows in the same order give the same profile whatever the
batches. They serialise with `to_bytes()` (versioned, zlib, no pickle); `digest` names the
profile (window summaries carry it). A profile of 100,000 rows and 20 continuous features is
about 10 MB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlplane_drift import stats_codec
from mlplane_drift.errors import CorruptSummary, DriftInputError
from mlplane_drift.stats_columns import (
    ValueType,
    as_table,
    category_counts,
    category_key,
    check_type,
    numeric_values,
    value_type_of,
)
from mlplane_drift.stats_quantiles import QuantileSample, weighted_quantile_points

SAMPLE_LIMIT = 100_000
MAX_EDGES = 1_024
MAX_CATEGORIES = 10_000
# While reading, a categorical feature may show this many distinct values before we call it
# an identifier rather than a category and refuse it (memory stays bounded).
MAX_DISTINCT_WHILE_READING = 1_000_000
MAX_FEATURES = 2_000
BATCH_ROWS = 65_536

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# A path, the file's bytes, or a binary file object (pyarrow's NativeFile included).
Source: TypeAlias = str | bytes | IO[bytes]

_MAGIC = b"MLDP"
_VERSION = 1


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BINARY = "binary"


@dataclass(frozen=True)
class FeatureSpec:
    """A feature to watch; `kind` None means inferred from the data's Arrow type."""

    name: str
    kind: FeatureKind | None = None


@dataclass(frozen=True, eq=False)
class NumericProfile:
    count: int
    missing: int
    minimum: float
    maximum: float
    mean: float
    std: float
    values: FloatArray
    """Sorted distinct values (or quantile points past the sample limit)."""
    weights: FloatArray
    """How many reference rows each value stands for; sums to `count`."""
    rank_error: float
    """Bound on sup |F_profile - F_reference|; 0.0 when `values` is exact."""
    edges: FloatArray
    """Sorted distinct bin edges for window summaries (includes min and max)."""

    @property
    def exact(self) -> bool:
        return self.rank_error == 0.0

    @property
    def distinct(self) -> int | None:
        """Distinct non-missing values, or None when more than the sample limit."""
        return len(self.values) if self.exact else None


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    value_type: ValueType
    categories: tuple[str, ...]
    counts: IntArray
    other_count: int
    """Reference rows in categories past `MAX_CATEGORIES` (the least frequent)."""
    missing: int

    @property
    def count(self) -> int:
        return int(self.counts.sum()) + self.other_count


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Features in order, each with its profile; `rows` counts reference rows read."""

    features: tuple[FeatureSpec, ...]
    profiles: dict[str, FeatureProfile]
    rows: int
    _digest: list[str] = field(default_factory=list, repr=False)

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_table(
        cls, table: pa.Table, features: Sequence[FeatureSpec] | None = None
    ) -> ReferenceProfile:
        """Profile an Arrow table. Raises `DriftInputError` on unusable data."""
        if not isinstance(table, pa.Table):
            raise DriftInputError("reference data must be an Arrow table")
        return cls.from_batches(table.schema, table.to_batches(BATCH_ROWS), features)

    @classmethod
    def from_rows(
        cls, rows: Sequence[Mapping[str, Any]], features: Sequence[FeatureSpec] | None = None
    ) -> ReferenceProfile:
        """Profile rows given as feature mappings (e.g. the first samples a model served).

        Without `features`, every key seen is a feature, kinds inferred; a feature absent
        from a row is missing there. Raises `DriftInputError` on unusable rows.
        """
        if not all(isinstance(row, Mapping) for row in rows):
            raise DriftInputError("every row must be an object of feature values")
        if features is not None:
            names = [spec.name for spec in features]
        else:
            names = list(dict.fromkeys(key for row in rows for key in row))
        table = as_table({name: [row.get(name) for row in rows] for name in names})
        return cls.from_table(table, features)

    @classmethod
    def from_parquet(
        cls, source: Source, features: Sequence[FeatureSpec] | None = None
    ) -> ReferenceProfile:
        """Profile a Parquet file (path, bytes or binary file object), batch by batch."""
        try:
            parquet = pq.ParquetFile(_readable(source))
            columns = [f.name for f in features] if features else None
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
            schema = parquet.schema_arrow
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise DriftInputError(f"reference is not a readable Parquet file: {exc}") from exc
        return cls.from_batches(schema, _guarded(batches, "Parquet"), features)

    @classmethod
    def from_csv(
        cls, source: Source, features: Sequence[FeatureSpec] | None = None
    ) -> ReferenceProfile:
        """Profile a CSV file with a header row, batch by batch (types inferred by Arrow)."""
        try:
            reader = pa_csv.open_csv(
                _readable(source), read_options=pa_csv.ReadOptions(block_size=1 << 22)
            )
        except (pa.ArrowException, OSError) as exc:
            raise DriftInputError(f"reference is not a readable CSV file: {exc}") from exc
        return cls.from_batches(reader.schema, _guarded(iter(reader), "CSV"), features)

    @classmethod
    def from_batches(
        cls,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        features: Sequence[FeatureSpec] | None = None,
    ) -> ReferenceProfile:
        """Profile record batches that follow `schema`; the core of the other builders."""
        specs = _resolve_specs(schema, features)
        builders: dict[str, _NumericBuilder | _CategoricalBuilder] = {}
        for spec in specs:
            column_type = schema.field(spec.name).type
            if spec.kind == FeatureKind.NUMERIC:
                builders[spec.name] = _NumericBuilder(spec.name)
            else:
                expected = value_type_of(column_type) or "string"
                builders[spec.name] = _CategoricalBuilder(spec.name, expected)
        rows = 0
        for batch in batches:
            rows += batch.num_rows
            for spec in specs:
                builders[spec.name].add(pa.chunked_array([batch.column(spec.name)]))
        if rows == 0:
            raise DriftInputError("reference data has no rows")
        declared = {f.name: f.kind for f in features or ()}
        final_specs: list[FeatureSpec] = []
        profiles: dict[str, FeatureProfile] = {}
        for spec in specs:
            # A kind the caller did not declare is inferred: two distinct values make a
            # binary feature, whatever their type.
            infer = declared.get(spec.name) is None
            profile = builders[spec.name].finish(binary_if_two=infer)
            kind = spec.kind
            if infer and isinstance(profile, CategoricalProfile) and len(profile.categories) == 2:
                kind = FeatureKind.BINARY
            final_specs.append(FeatureSpec(spec.name, kind))
            profiles[spec.name] = profile
        return cls(features=tuple(final_specs), profiles=profiles, rows=rows)

    # -- reading ----------------------------------------------------------------------

    def kind(self, name: str) -> FeatureKind:
        for spec in self.features:
            if spec.name == name:
                assert spec.kind is not None
                return spec.kind
        raise DriftInputError(f"unknown feature {name!r}", feature=name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.features)

    @property
    def digest(self) -> str:
        """SHA-256 of the profile's contents: window summaries name the profile by it."""
        if not self._digest:
            self._digest.append(stats_codec.fingerprint(_MAGIC, _VERSION, *self._parts()))
        return self._digest[0]

    # -- bytes ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return stats_codec.encode(_MAGIC, _VERSION, *self._parts())

    def _parts(self) -> tuple[dict[str, Any], list[npt.NDArray[Any]]]:
        header: dict[str, Any] = {"rows": self.rows, "features": []}
        arrays: list[npt.NDArray[Any]] = []
        for spec in self.features:
            profile = self.profiles[spec.name]
            entry: dict[str, Any] = {"name": spec.name, "kind": str(spec.kind)}
            if isinstance(profile, NumericProfile):
                entry.update(
                    count=profile.count,
                    missing=profile.missing,
                    stats=[profile.minimum, profile.maximum, profile.mean, profile.std],
                    rank_error=profile.rank_error,
                )
                arrays += [profile.values, profile.weights, profile.edges]
            else:
                entry.update(
                    value_type=profile.value_type,
                    categories=list(profile.categories),
                    other=profile.other_count,
                    missing=profile.missing,
                )
                arrays.append(profile.counts)
            header["features"].append(entry)
        return header, arrays

    @classmethod
    def from_bytes(cls, blob: bytes) -> ReferenceProfile:
        """Read a profile written by `to_bytes`; raises `CorruptSummary` on bad bytes."""
        _, header, arrays = stats_codec.decode(blob, _MAGIC, frozenset({_VERSION}))
        try:
            return _profile_from_parts(header, arrays)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptSummary(f"profile blob is not valid: {exc}") from exc


def _profile_from_parts(header: dict[str, Any], arrays: list[npt.NDArray[Any]]) -> ReferenceProfile:
    specs: list[FeatureSpec] = []
    profiles: dict[str, FeatureProfile] = {}
    position = 0
    for entry in header["features"]:
        name = str(entry["name"])
        kind = FeatureKind(entry["kind"])
        if kind == FeatureKind.NUMERIC:
            values, weights, edges = arrays[position : position + 3]
            position += 3
            if len(values) != len(weights) or (len(edges) == 0 and int(entry["count"]) > 0):
                raise ValueError(f"feature {name!r} arrays do not match")
            minimum, maximum, mean, std = (float(x) for x in entry["stats"])
            profiles[name] = NumericProfile(
                count=int(entry["count"]),
                missing=int(entry["missing"]),
                minimum=minimum,
                maximum=maximum,
                mean=mean,
                std=std,
                values=values.astype(np.float64),
                weights=weights.astype(np.float64),
                rank_error=float(entry["rank_error"]),
                edges=edges.astype(np.float64),
            )
        else:
            counts = arrays[position].astype(np.int64)
            position += 1
            categories = tuple(str(c) for c in entry["categories"])
            if len(categories) != len(counts):
                raise ValueError(f"feature {name!r} categories do not match their counts")
            value_type = entry["value_type"]
            if value_type not in ("string", "bool", "number"):
                raise ValueError(f"feature {name!r} has an unknown value type")
            profiles[name] = CategoricalProfile(
                value_type=value_type,
                categories=categories,
                counts=counts,
                other_count=int(entry["other"]),
                missing=int(entry["missing"]),
            )
        specs.append(FeatureSpec(name, kind))
    if position != len(arrays):
        raise ValueError("profile blob has extra arrays")
    return ReferenceProfile(features=tuple(specs), profiles=profiles, rows=int(header["rows"]))


# -- builders -------------------------------------------------------------------------


def _readable(source: Source) -> Any:
    if isinstance(source, bytes | bytearray | memoryview):
        return pa.BufferReader(bytes(source))
    return source


def _guarded(batches: Iterable[pa.RecordBatch], what: str) -> Iterable[pa.RecordBatch]:
    """Turn read errors in the middle of a file into `DriftInputError`."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DriftInputError(f"reference {what} could not be read: {exc}") from exc
        yield batch


def _kind_of_type(arrow_type: pa.DataType) -> FeatureKind | None:
    value_type = value_type_of(arrow_type)
    if value_type == "number":
        return FeatureKind.NUMERIC
    if value_type == "bool":
        return FeatureKind.BINARY
    if value_type == "string":
        return FeatureKind.CATEGORICAL
    return None


def _resolve_specs(schema: pa.Schema, features: Sequence[FeatureSpec] | None) -> list[FeatureSpec]:
    """Feature specs with kinds filled in from Arrow types; binary is settled at the end."""
    if features is not None:
        if not features:
            raise DriftInputError("no features given")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise DriftInputError("feature names repeat")
        missing = [n for n in names if n not in schema.names]
        if missing:
            raise DriftInputError(f"reference data lacks features: {', '.join(missing[:20])}")
        chosen = list(features)
    else:
        unusable = [f.name for f in schema if _kind_of_type(f.type) is None]
        if unusable:
            raise DriftInputError(
                "cannot infer a feature kind for columns "
                f"{', '.join(unusable[:20])} (types: numbers, booleans, strings); "
                "name the features to profile"
            )
        chosen = [FeatureSpec(f.name, None) for f in schema]
    if len(chosen) > MAX_FEATURES:
        raise DriftInputError(f"at most {MAX_FEATURES} features can be profiled")
    if not chosen:
        raise DriftInputError("reference data has no columns")
    specs: list[FeatureSpec] = []
    for spec in chosen:
        column_type = schema.field(spec.name).type
        inferred = _kind_of_type(column_type)
        kind = spec.kind or inferred
        if kind is None:
            raise DriftInputError(
                f"feature {spec.name!r} has type {column_type}, which cannot be profiled",
                feature=spec.name,
            )
        if kind == FeatureKind.NUMERIC and value_type_of(column_type) != "number":
            raise DriftInputError(
                f"feature {spec.name!r} is declared numeric but holds {column_type}",
                feature=spec.name,
            )
        specs.append(FeatureSpec(spec.name, kind))
    return specs


class _NumericBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.missing = 0
        self.minimum = np.inf
        self.maximum = -np.inf
        self.mean = 0.0
        self.m2 = 0.0
        self.sample = QuantileSample(SAMPLE_LIMIT)

    def add(self, column: pa.ChunkedArray) -> None:
        values, missing = numeric_values(self.name, column)
        self.missing += missing
        n = len(values)
        if n == 0:
            return
        # Chan et al.'s parallel update: exact enough and stable for any batch order. Values
        # near the float limit overflow to an infinite spread, as numpy's std does.
        with np.errstate(over="ignore", invalid="ignore"):
            batch_mean = float(values.mean())
            batch_m2 = float(((values - batch_mean) ** 2).sum())
        total = self.count + n
        with np.errstate(over="ignore", invalid="ignore"):
            delta = batch_mean - self.mean
            self.mean += delta * n / total
            self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        self.sample.add(values)

    def finish(self, binary_if_two: bool) -> FeatureProfile:
        values, weights, rank_error = self.sample.finish()
        if binary_if_two and rank_error == 0.0 and len(values) == 2:
            keys = [category_key(float(v)) for v in values]
            return CategoricalProfile(
                value_type="number",
                categories=tuple(keys),
                counts=weights.astype(np.int64),
                other_count=0,
                missing=self.missing,
            )
        if self.count == 0:
            empty = np.empty(0, dtype=np.float64)
            nan = float("nan")
            return NumericProfile(0, self.missing, nan, nan, nan, nan, empty, empty, 0.0, empty)
        if len(values) <= MAX_EDGES:
            edges = values.copy()
        else:
            inner = weighted_quantile_points(values, weights, MAX_EDGES - 2)
            edges = np.unique(np.concatenate([[self.minimum], inner, [self.maximum]]))
        return NumericProfile(
            count=self.count,
            missing=self.missing,
            minimum=self.minimum,
            maximum=self.maximum,
            mean=self.mean,
            std=float(np.sqrt(self.m2 / self.count)),
            values=values,
            weights=weights,
            rank_error=rank_error,
            edges=edges,
        )


class _CategoricalBuilder:
    def __init__(self, name: str, value_type: ValueType) -> None:
        self.name = name
        self.value_type: ValueType = value_type
        self.counts: dict[str, int] = {}
        self.missing = 0

    def add(self, column: pa.ChunkedArray) -> None:
        check_type(self.name, column, self.value_type)
        counts, missing = category_counts(self.name, column, self.value_type)
        self.missing += missing
        for key, count in counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        if len(self.counts) > MAX_DISTINCT_WHILE_READING:
            raise DriftInputError(
                f"feature {self.name!r} has more than {MAX_DISTINCT_WHILE_READING} distinct "
                "values: an identifier or free text, not a category",
                feature=self.name,
            )

    def finish(self, binary_if_two: bool) -> FeatureProfile:
        # Most frequent first; ties by key so the profile does not depend on row order.
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[:MAX_CATEGORIES]
        other = sum(count for _, count in ranked[MAX_CATEGORIES:])
        kept.sort(key=lambda item: item[0])
        return CategoricalProfile(
            value_type=self.value_type,
            categories=tuple(key for key, _ in kept),
            counts=np.array([count for _, count in kept], dtype=np.int64),
            other_count=other,
            missing=self.missing,
        )
