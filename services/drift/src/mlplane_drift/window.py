"""A mergeable summary of the current window, counted against a reference profile's bins.

Several drift replicas add samples to one window and any of them may judge it, so a window
is never one process's list of rows: it is a summary that any replica can add rows to,
store, and merge with others. Everything in it is exact and order-independent:

- numeric feature: counts and sums over the cells a profile's edges e_0 < ... < e_{m-1}
  define: below e_0, each edge exactly, each open interval between edges, above e_{m-1}
  (2m + 1 cells); plus missing count, exact min and max, and exact counts per distinct
  value while there are at most `SMALL_DISTINCT` = 32 of them (dropped for good past that;
  whether a window has more does not depend on order, and Evidently's test choice only needs
  to know whether a feature has at most 5 values);
- categorical or binary feature: counts per reference category, counts of unseen
  categories (the `MAX_UNSEEN` = 256 with the smallest stable hash: a choice that does not
  depend on arrival order, unlike "top K"), one count for the unseen rest, missing count.

Integer counts, mins and maxes merge exactly in any order. Sums are float64: a different
merge order can change a sum in its last bits (relative 1e-15), which moves a Wasserstein
score by as much; verdicts can differ only for a score within that of its threshold.

Why counts at edges are enough: when the edges are every distinct reference value (at most
1,024 of them, always so for a reference of at most 1,000 rows), the reference CDF is
constant between edges, so the two-sample KS statistic needs the window's counts below and
at each edge only: it is exact. Wasserstein and the remaining error are in `stats_numeric`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from mlplane_drift import stats_codec
from mlplane_drift.errors import CorruptSummary, DriftInputError, SummaryMismatch
from mlplane_drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlplane_drift.stats_columns import as_table, category_counts, numeric_values

SMALL_DISTINCT = 32
MAX_UNSEEN = 256
# One `add` call takes at most this many rows; the service splits bigger batches.
MAX_ROWS_PER_ADD = 5_000_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
WindowData: TypeAlias = "pa.Table | Mapping[str, Sequence[Any]]"

_MAGIC = b"MLDW"
_VERSION = 1


def _stable_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(eq=False)
class NumericWindow:
    counts: IntArray
    sums: FloatArray
    missing: int
    minimum: float
    maximum: float
    small: dict[float, int] | None
    """Exact counts per distinct value while there are at most SMALL_DISTINCT; else None."""

    @classmethod
    def empty(cls, profile: NumericProfile) -> NumericWindow:
        cells = 2 * len(profile.edges) + 1
        return cls(
            counts=np.zeros(cells, dtype=np.int64),
            sums=np.zeros(cells, dtype=np.float64),
            missing=0,
            minimum=np.inf,
            maximum=-np.inf,
            small={},
        )

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, edges: FloatArray, values: FloatArray, missing: int) -> None:
        self.missing += missing
        if len(values) == 0:
            return
        # Sorting once and cutting the sorted values at the edges is several times faster
        # than looking up every value among the edges (and sums each cell in one pass).
        ordered = np.sort(values)
        below = np.searchsorted(ordered, edges, side="left")
        upto = np.searchsorted(ordered, edges, side="right")
        # Cell 2i is the open interval just below edge i (2m: above the last edge), cell
        # 2i + 1 is edge i itself.
        starts = np.empty(len(self.counts), dtype=np.int64)
        starts[0] = 0
        starts[1::2] = below
        starts[2::2] = upto
        ends = np.append(starts[1:], len(ordered))
        counts = ends - starts
        # A trailing zero keeps every start a valid index, so each cell sums exactly
        # [start, next start); reduceat gives empty cells a stray value, masked below.
        sums = np.add.reduceat(np.append(ordered, 0.0), starts)
        self.counts += counts
        self.sums += np.where(counts > 0, sums, 0.0)
        self.minimum = min(self.minimum, float(ordered[0]))
        self.maximum = max(self.maximum, float(ordered[-1]))
        if self.small is not None:
            self.small = _merge_small(self.small, _value_counts(ordered))

    def merge(self, other: NumericWindow) -> NumericWindow:
        small = _merge_small(self.small, other.small)
        return NumericWindow(
            counts=self.counts + other.counts,
            sums=self.sums + other.sums,
            missing=self.missing + other.missing,
            minimum=min(self.minimum, other.minimum),
            maximum=max(self.maximum, other.maximum),
            small=small,
        )


def _value_counts(ordered: FloatArray) -> dict[float, int] | None:
    """Exact counts per distinct value of sorted values, or None past SMALL_DISTINCT values."""
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    if len(starts) > SMALL_DISTINCT:
        return None
    counts = np.diff(np.append(starts, len(ordered)))
    return {float(ordered[i]): int(c) for i, c in zip(starts, counts, strict=True)}


def _merge_small(
    left: dict[float, int] | None, right: dict[float, int] | None
) -> dict[float, int] | None:
    if left is None or right is None:
        return None
    merged = dict(left)
    for value, count in right.items():
        merged[value] = merged.get(value, 0) + count
    return merged if len(merged) <= SMALL_DISTINCT else None


@dataclass(eq=False)
class CategoricalWindow:
    counts: IntArray
    """Counts per reference category, in the profile's order."""
    unseen: dict[str, int]
    """Counts of categories the reference lacks: the MAX_UNSEEN with the smallest hash."""
    unseen_other: int
    """Rows in unseen categories past MAX_UNSEEN."""
    missing: int

    @classmethod
    def empty(cls, profile: CategoricalProfile) -> CategoricalWindow:
        return cls(np.zeros(len(profile.categories), dtype=np.int64), {}, 0, 0)

    @property
    def count(self) -> int:
        return int(self.counts.sum()) + sum(self.unseen.values()) + self.unseen_other

    @property
    def unseen_count(self) -> int:
        return sum(self.unseen.values()) + self.unseen_other

    def add(self, index: Mapping[str, int], counts: Mapping[str, int], missing: int) -> None:
        self.missing += missing
        unseen: dict[str, int] = {}
        for key, count in counts.items():
            position = index.get(key)
            if position is None:
                unseen[key] = count
            else:
                self.counts[position] += count
        if unseen:
            self.unseen, self.unseen_other = _merge_unseen(
                self.unseen, self.unseen_other, unseen, 0
            )

    def merge(self, other: CategoricalWindow) -> CategoricalWindow:
        unseen, rest = _merge_unseen(
            self.unseen, self.unseen_other, other.unseen, other.unseen_other
        )
        return CategoricalWindow(
            counts=self.counts + other.counts,
            unseen=unseen,
            unseen_other=rest,
            missing=self.missing + other.missing,
        )


def _merge_unseen(
    left: dict[str, int], left_rest: int, right: dict[str, int], right_rest: int
) -> tuple[dict[str, int], int]:
    # The kept set is always "the MAX_UNSEEN smallest hashes among all unseen categories
    # so far": a category once pushed out can never come back (MAX_UNSEEN smaller ones
    # stay), so every kept category's count is complete whatever the order.
    merged = dict(left)
    for key, count in right.items():
        merged[key] = merged.get(key, 0) + count
    rest = left_rest + right_rest
    if len(merged) > MAX_UNSEEN:
        ranked = sorted(merged, key=lambda key: (_stable_hash(key), key))
        for key in ranked[MAX_UNSEEN:]:
            rest += merged.pop(key)
    return merged, rest


FeatureWindow = NumericWindow | CategoricalWindow


@dataclass(eq=False)
class WindowSummary:
    """The current window of one model version and environment, against one profile.

    Holds the profile it counts against (not serialised: `from_bytes` takes it again).
    """

    profile: ReferenceProfile
    features: dict[str, FeatureWindow]
    count: int
    """Rows added (a row counts whether or not its values are missing)."""

    @property
    def profile_digest(self) -> str:
        return self.profile.digest

    @classmethod
    def empty(cls, profile: ReferenceProfile) -> WindowSummary:
        features: dict[str, FeatureWindow] = {}
        for name in profile.names:
            feature = profile.profiles[name]
            if isinstance(feature, NumericProfile):
                features[name] = NumericWindow.empty(feature)
            else:
                features[name] = CategoricalWindow.empty(feature)
        return cls(profile=profile, features=features, count=0)

    def add(self, data: WindowData) -> WindowSummary:
        """Count rows into this summary (in place; returns self).

        `data` is an Arrow table or a mapping of column name to values; columns that are
        not features (prediction, label, ids) are ignored. Raises `DriftInputError` when a
        feature is missing or holds the wrong type of values; then nothing is counted.
        """
        profile = self.profile
        table = as_table(data)
        if table.num_rows > MAX_ROWS_PER_ADD:
            raise DriftInputError(f"at most {MAX_ROWS_PER_ADD} rows can be added at once")
        absent = [name for name in profile.names if name not in table.column_names]
        if absent:
            raise DriftInputError(f"window data lacks features: {', '.join(absent[:20])}")
        if table.num_rows == 0:
            return self
        # Read every column before counting any, so a bad column leaves the summary as it was.
        staged: list[tuple[str, Any]] = []
        for name in profile.names:
            feature = profile.profiles[name]
            column = table.column(name)
            if isinstance(feature, NumericProfile):
                staged.append((name, numeric_values(name, column)))
            else:
                staged.append((name, category_counts(name, column, feature.value_type)))
        for name, (values, missing) in staged:
            window = self.features[name]
            feature = profile.profiles[name]
            if isinstance(window, NumericWindow) and isinstance(feature, NumericProfile):
                window.add(feature.edges, values, missing)
            elif isinstance(window, CategoricalWindow) and isinstance(feature, CategoricalProfile):
                window.add(_category_index(feature), values, missing)
        self.count += table.num_rows
        return self

    def add_rows(self, rows: Sequence[Mapping[str, Any]]) -> WindowSummary:
        """Count rows given as feature mappings (the client's `features` objects).

        A feature absent from a row counts as missing there; keys that are not features are
        ignored. Raises `DriftInputError` as `add` does, or when a row is not a mapping.
        """
        if len(rows) > MAX_ROWS_PER_ADD:
            raise DriftInputError(f"at most {MAX_ROWS_PER_ADD} rows can be added at once")
        if not all(isinstance(row, Mapping) for row in rows):
            raise DriftInputError("every row must be an object of feature values")
        columns = {name: [row.get(name) for row in rows] for name in self.profile.names}
        if not rows:
            return self
        return self.add(columns)

    def merge(self, other: WindowSummary) -> WindowSummary:
        """A new summary of both windows' rows. Raises `SummaryMismatch` across profiles."""
        if (
            other.profile_digest != self.profile_digest
            or other.features.keys() != self.features.keys()
        ):
            raise SummaryMismatch("window summaries were built for different reference profiles")
        features: dict[str, FeatureWindow] = {}
        for name, window in self.features.items():
            theirs = other.features[name]
            if isinstance(window, NumericWindow) and isinstance(theirs, NumericWindow):  # noqa: SIM114
                features[name] = window.merge(theirs)
            elif isinstance(window, CategoricalWindow) and isinstance(theirs, CategoricalWindow):
                features[name] = window.merge(theirs)
            else:
                raise SummaryMismatch(f"feature {name!r} has different kinds in the two summaries")
        return WindowSummary(self.profile, features, self.count + other.count)

    # -- bytes ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header: dict[str, Any] = {
            "profile": self.profile_digest,
            "count": self.count,
            "features": [],
        }
        arrays: list[npt.NDArray[Any]] = []
        for name, window in self.features.items():
            if isinstance(window, NumericWindow):
                small = window.small
                header["features"].append(
                    {
                        "name": name,
                        "kind": "n",
                        "missing": window.missing,
                        "range": [window.minimum, window.maximum],
                        "small": small is not None,
                    }
                )
                keys = sorted(small) if small is not None else []
                arrays += [
                    window.counts,
                    window.sums,
                    np.array(keys, dtype=np.float64),
                    np.array([small[k] for k in keys] if small is not None else [], dtype=np.int64),
                ]
            else:
                unseen = sorted(window.unseen.items())
                header["features"].append(
                    {
                        "name": name,
                        "kind": "c",
                        "missing": window.missing,
                        "unseen": [key for key, _ in unseen],
                        "rest": window.unseen_other,
                    }
                )
                arrays += [window.counts, np.array([c for _, c in unseen], dtype=np.int64)]
        return stats_codec.encode(_MAGIC, _VERSION, header, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes, profile: ReferenceProfile) -> WindowSummary:
        """Read a summary written by `to_bytes` for `profile`.

        Raises `CorruptSummary` on unreadable bytes and `SummaryMismatch` when the summary
        belongs to another profile.
        """
        _, header, arrays = stats_codec.decode(blob, _MAGIC, frozenset({_VERSION}))
        if header.get("profile") != profile.digest:
            raise SummaryMismatch("window summary was built for a different reference profile")
        try:
            summary = _summary_from_parts(header, arrays, profile)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptSummary(f"window summary blob is not valid: {exc}") from exc
        expected = WindowSummary.empty(profile)
        for name, window in expected.features.items():
            mine = summary.features.get(name)
            if (
                mine is None
                or type(mine) is not type(window)
                or len(mine.counts) != len(window.counts)
            ):
                raise CorruptSummary(f"window summary does not fit the profile at feature {name!r}")
        if summary.features.keys() != expected.features.keys():
            raise CorruptSummary("window summary features do not match the profile")
        return summary


def _category_index(profile: CategoricalProfile) -> dict[str, int]:
    return {key: position for position, key in enumerate(profile.categories)}


def _summary_from_parts(
    header: dict[str, Any], arrays: list[npt.NDArray[Any]], profile: ReferenceProfile
) -> WindowSummary:
    features: dict[str, FeatureWindow] = {}
    position = 0
    for entry in header["features"]:
        name = str(entry["name"])
        if entry["kind"] == "n":
            counts, sums, keys, key_counts = arrays[position : position + 4]
            position += 4
            if (
                len(counts) != len(sums)
                or len(keys) != len(key_counts)
                or len(keys) > SMALL_DISTINCT
            ):
                raise ValueError(f"feature {name!r} arrays do not match")
            minimum, maximum = (float(x) for x in entry["range"])
            small = (
                {float(k): int(c) for k, c in zip(keys, key_counts, strict=True)}
                if entry["small"]
                else None
            )
            features[name] = NumericWindow(
                counts=counts.astype(np.int64),
                sums=sums.astype(np.float64),
                missing=int(entry["missing"]),
                minimum=minimum,
                maximum=maximum,
                small=small,
            )
        elif entry["kind"] == "c":
            counts, unseen_counts = arrays[position : position + 2]
            position += 2
            unseen_keys = [str(k) for k in entry["unseen"]]
            if len(unseen_keys) != len(unseen_counts) or len(unseen_keys) > MAX_UNSEEN:
                raise ValueError(f"feature {name!r} unseen categories do not match")
            features[name] = CategoricalWindow(
                counts=counts.astype(np.int64),
                unseen=dict(zip(unseen_keys, (int(c) for c in unseen_counts), strict=True)),
                unseen_other=int(entry["rest"]),
                missing=int(entry["missing"]),
            )
        else:
            raise ValueError(f"feature {name!r} has an unknown kind")
    if position != len(arrays):
        raise ValueError("window summary blob has extra arrays")
    return WindowSummary(profile, features, int(header["count"]))
