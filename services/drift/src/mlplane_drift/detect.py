"""The drift verdict of a window against its reference profile.

`detect` picks each feature's test as Evidently does by default (see
`methods.default_test`), or as `DriftConfig` overrides it, computes the score from the
profile and the window summary, and reports PSI for every feature besides. The dataset has
drifted when the share of drifted features reaches `share_threshold` (Evidently: >=).

Features that cannot be tested are reported, not raised: a feature whose window (or
reference) values are all missing gets `method=None`, `drifted=False`, a note, and does not
count in the drift share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from mlplane_drift import methods, stats_numeric
from mlplane_drift.errors import DriftInputError, SummaryMismatch
from mlplane_drift.methods import StatTest
from mlplane_drift.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ReferenceProfile,
)
from mlplane_drift.window import CategoricalWindow, NumericWindow, WindowSummary

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureConfig:
    """Per-feature overrides; None keeps the default."""

    method: StatTest | None = None
    threshold: float | None = None
    psi_threshold: float | None = None
    """When set, a PSI at or above it marks the feature drifted too."""


@dataclass(frozen=True)
class DriftConfig:
    share_threshold: float = 0.5
    """Dataset drift when drifted features / tested features >= this."""
    alpha: float = 0.05
    """Threshold of p-value tests (KS, chi-square, Z) without a per-feature one."""
    distance_threshold: float = 0.1
    """Threshold of distances (Wasserstein, Jensen-Shannon, PSI) without a per-feature one."""
    features: Mapping[str, FeatureConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.share_threshold <= 1.0:
            raise DriftInputError("share_threshold must be in (0, 1]")
        if not 0.0 < self.alpha < 1.0:
            raise DriftInputError("alpha must be in (0, 1)")
        if not (math.isfinite(self.distance_threshold) and self.distance_threshold > 0.0):
            raise DriftInputError("distance_threshold must be positive")
        for name, feature in self.features.items():
            for value in (feature.threshold, feature.psi_threshold):
                if value is not None and not (math.isfinite(value) and value > 0):
                    raise DriftInputError(f"thresholds of feature {name!r} must be positive")
            p_value = feature.method is not None and feature.method in methods.P_VALUE_TESTS
            if p_value and feature.threshold is not None and feature.threshold >= 1:
                raise DriftInputError(f"p-value threshold of feature {name!r} must be < 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftConfig:
        """A config from JSON-like data, e.g. {"share_threshold": 0.3, "features": {"age":
        {"method": "ks", "threshold": 0.01, "psi_threshold": 0.2}}}; raises
        `DriftInputError` on unknown keys, methods or bad values."""
        if not isinstance(data, Mapping):
            raise DriftInputError("drift config must be an object")
        known = {"share_threshold", "alpha", "distance_threshold", "features"}
        extra = sorted(set(data) - known)
        if extra:
            raise DriftInputError(f"unknown drift config keys: {', '.join(map(str, extra[:10]))}")
        features_data = data.get("features") or {}
        if not isinstance(features_data, Mapping):
            raise DriftInputError("drift config 'features' must be an object")
        features: dict[str, FeatureConfig] = {}
        try:
            for name, entry in features_data.items():
                if not isinstance(entry, Mapping) or set(entry) - {
                    "method",
                    "threshold",
                    "psi_threshold",
                }:
                    raise DriftInputError(f"drift config of feature {name!r} is not valid")
                method = entry.get("method")
                features[str(name)] = FeatureConfig(
                    method=None if method is None else StatTest(method),
                    threshold=_optional_float(entry.get("threshold")),
                    psi_threshold=_optional_float(entry.get("psi_threshold")),
                )
            return cls(
                share_threshold=float(data.get("share_threshold", 0.5)),
                alpha=float(data.get("alpha", 0.05)),
                distance_threshold=float(data.get("distance_threshold", 0.1)),
                features=features,
            )
        except (TypeError, ValueError) as exc:
            raise DriftInputError(f"drift config is not valid: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "share_threshold": self.share_threshold,
            "alpha": self.alpha,
            "distance_threshold": self.distance_threshold,
            "features": {
                name: {
                    "method": None if own.method is None else str(own.method),
                    "threshold": own.threshold,
                    "psi_threshold": own.psi_threshold,
                }
                for name, own in self.features.items()
            },
        }

    def threshold_for(self, name: str, test: StatTest) -> float:
        own = self.features.get(name)
        if own is not None and own.threshold is not None:
            return own.threshold
        return self.alpha if test in methods.P_VALUE_TESTS else self.distance_threshold


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    method: StatTest | None
    """None when the feature could not be tested (see `note`)."""
    score: float
    """p-value for KS, chi-square and Z; distance for the others; NaN when untested."""
    threshold: float
    drifted: bool
    psi: float
    nan_share: float
    """Share of the window's rows where the feature is missing (null, NaN, infinite)."""
    unseen_share: float
    """Categorical: share of non-missing values in categories the reference lacks.
    Numeric: share outside the reference's [min, max]."""
    note: str
    kind: FeatureKind = FeatureKind.NUMERIC
    sample_size: int = 0
    """Non-missing window values tested."""
    error_bound: float = 0.0
    """How far `score` may be from the same test on the raw rows (0.0: exact)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": str(self.kind),
            "method": None if self.method is None else str(self.method),
            "score": _json_number(self.score),
            "threshold": _json_number(self.threshold),
            "drifted": self.drifted,
            "psi": _json_number(self.psi),
            "nan_share": _json_number(self.nan_share),
            "unseen_share": _json_number(self.unseen_share),
            "sample_size": self.sample_size,
            "error_bound": _json_number(self.error_bound),
            "note": self.note,
        }


@dataclass(frozen=True)
class DriftVerdict:
    features: tuple[FeatureResult, ...]
    drift_share: float
    dataset_drifted: bool
    share_threshold: float
    sample_size: int
    """Rows in the window."""
    reference_size: int
    """Rows in the reference."""

    @property
    def drifted_features(self) -> tuple[FeatureResult, ...]:
        return tuple(result for result in self.features if result.drifted)

    @property
    def tested_features(self) -> tuple[FeatureResult, ...]:
        return tuple(result for result in self.features if result.method is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "dataset_drifted": self.dataset_drifted,
            "share_threshold": self.share_threshold,
            "sample_size": self.sample_size,
            "reference_size": self.reference_size,
            "features": [result.to_dict() for result in self.features],
        }


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a threshold must be a number")
    return float(value)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def detect(
    reference: ReferenceProfile, window: WindowSummary, config: DriftConfig | None = None
) -> DriftVerdict:
    """Test every feature of `window` against `reference`.

    Raises `SummaryMismatch` when the window was built for another profile and
    `DriftInputError` for an empty window or a config naming unknown features or tests
    that do not fit a feature's kind.
    """
    config = config or DriftConfig()
    if window.profile_digest != reference.digest:
        raise SummaryMismatch("window summary was built for a different reference profile")
    if window.count == 0:
        raise DriftInputError("the window holds no rows")
    unknown = sorted(set(config.features) - set(reference.names))
    if unknown:
        raise DriftInputError(f"config names unknown features: {', '.join(unknown[:20])}")
    results: list[FeatureResult] = []
    for spec in reference.features:
        profile = reference.profiles[spec.name]
        feature_window = window.features[spec.name]
        own = config.features.get(spec.name, FeatureConfig())
        if isinstance(profile, NumericProfile) and isinstance(feature_window, NumericWindow):
            result = _numeric(spec.name, profile, feature_window, own, config)
        elif isinstance(profile, CategoricalProfile) and isinstance(
            feature_window, CategoricalWindow
        ):
            result = _categorical(spec.name, profile, feature_window, own, config)
        else:  # pragma: no cover - from_bytes and empty() keep kinds aligned
            raise SummaryMismatch(f"feature {spec.name!r} differs in kind from its profile")
        results.append(replace(result, kind=spec.kind or FeatureKind.NUMERIC))
    tested = [r for r in results if r.method is not None]
    drifted = sum(1 for r in tested if r.drifted)
    share = drifted / len(tested) if tested else 0.0
    return DriftVerdict(
        features=tuple(results),
        drift_share=share,
        dataset_drifted=bool(tested) and share >= config.share_threshold,
        share_threshold=config.share_threshold,
        sample_size=window.count,
        reference_size=reference.rows,
    )


def _untested(name: str, nan_share: float, note: str) -> FeatureResult:
    nan = float("nan")
    return FeatureResult(name, None, nan, nan, False, nan, nan_share, 0.0, note)


def _check_method(
    name: str, test: StatTest | None, allowed: frozenset[StatTest], kind: str
) -> None:
    if test is not None and test not in allowed:
        raise DriftInputError(f"test {test} does not apply to {kind} feature {name!r}")


def _finish(
    name: str,
    test: StatTest,
    score: float,
    bound: float,
    psi: float,
    own: FeatureConfig,
    config: DriftConfig,
    nan_share: float,
    unseen_share: float,
    size: int,
    note: str,
) -> FeatureResult:
    threshold = config.threshold_for(name, test)
    drifted = methods.is_drift(test, score, threshold)
    if own.psi_threshold is not None and math.isfinite(psi) and psi >= own.psi_threshold:
        drifted = True
        note = f"{note}; PSI {psi:.3g} >= {own.psi_threshold}".lstrip("; ")
    return FeatureResult(
        feature=name,
        method=test,
        score=score,
        threshold=threshold,
        drifted=drifted,
        psi=psi,
        nan_share=nan_share,
        unseen_share=unseen_share,
        note=note,
        sample_size=size,
        error_bound=bound,
    )


def _numeric(
    name: str,
    profile: NumericProfile,
    window: NumericWindow,
    own: FeatureConfig,
    config: DriftConfig,
) -> FeatureResult:
    _check_method(name, own.method, methods.NUMERIC_TESTS, "numeric")
    n = window.count
    nan_share = window.missing / (window.missing + n) if window.missing + n else 0.0
    if profile.count == 0:
        return _untested(name, nan_share, "reference has no non-missing values")
    if n == 0:
        return _untested(name, nan_share, "window has no non-missing values")
    distinct = _numeric_distinct(profile, window)
    test = own.method or methods.default_test(True, profile.count, distinct)
    unseen_share = float(window.counts[0] + window.counts[-1]) / n
    keyed = _numeric_keyed_counts(profile, window)
    note = ""
    if keyed is not None:
        reference_counts, current_counts = keyed
    else:
        reference_counts, current_counts, binned_bound = stats_numeric.sturges_shares(
            profile, window
        )
        if binned_bound > 0.01:
            note = f"PSI approximate: {binned_bound:.2%} of the window binned by cell mean"
    psi = methods.psi(reference_counts, current_counts)
    bound = 0.0
    if test == StatTest.KS:
        ks, _ = stats_numeric.ks(profile, window)
        score, bound = ks.value, ks.bound
    elif test == StatTest.WASSERSTEIN:
        wasserstein = stats_numeric.wasserstein_normed(profile, window)
        score, bound = wasserstein.value, wasserstein.bound
    elif test == StatTest.JENSEN_SHANNON:
        score = methods.jensen_shannon(reference_counts, current_counts)
    elif test == StatTest.PSI:
        score = psi
    elif test == StatTest.CHI_SQUARE:
        score = methods.chi_square_p(reference_counts, current_counts)
    else:
        score = methods.z_test_p(reference_counts, current_counts)
    if bound > 0:
        note = f"{note}; score within {bound:.2g} of the exact value".lstrip("; ")
    return _finish(name, test, score, bound, psi, own, config, nan_share, unseen_share, n, note)


def _numeric_distinct(profile: NumericProfile, window: NumericWindow) -> int:
    """Distinct values of reference and window together; any number above 5 means "many"."""
    many = methods.FEW_VALUES_MAX + 1
    if profile.distinct is None or profile.distinct > methods.FEW_VALUES_MAX:
        return many
    if window.small is None:
        return many
    return len(set(profile.values.tolist()) | set(window.small))


def _numeric_keyed_counts(
    profile: NumericProfile, window: NumericWindow
) -> tuple[FloatArray, FloatArray] | None:
    """Counts per distinct value (union of both sides) when the reference has <= 20 values.

    Past 32 distinct window values, window values off the reference values are grouped per
    cell between reference values; such values have no reference mass, so the grouping
    leaves Jensen-Shannon, chi-square (infinite) and Z unchanged and moves PSI only.
    """
    if profile.distinct is None or profile.distinct > methods.BINNED_ABOVE_VALUES:
        return None
    if window.small is not None:
        keys = sorted(set(profile.values.tolist()) | set(window.small))
        weights = dict(zip(profile.values.tolist(), profile.weights.tolist(), strict=True))
        reference = np.array([weights.get(k, 0.0) for k in keys], dtype=np.float64)
        current = np.array([window.small.get(k, 0) for k in keys], dtype=np.float64)
        return reference, current
    # Edges are the reference values here (<= 20 <= MAX_EDGES): edge cells are exact.
    at_edges = window.counts[1::2].astype(np.float64)
    between = window.counts[0::2].astype(np.float64)
    between = between[between > 0]
    reference = np.concatenate([profile.weights, np.zeros(len(between))])
    current = np.concatenate([at_edges, between])
    return reference, current


def _categorical(
    name: str,
    profile: CategoricalProfile,
    window: CategoricalWindow,
    own: FeatureConfig,
    config: DriftConfig,
) -> FeatureResult:
    _check_method(name, own.method, methods.CATEGORICAL_TESTS, "categorical")
    n = window.count
    nan_share = window.missing / (window.missing + n) if window.missing + n else 0.0
    if profile.count == 0:
        return _untested(name, nan_share, "reference has no non-missing values")
    if n == 0:
        return _untested(name, nan_share, "window has no non-missing values")
    reference, current, note = _aligned_categories(profile, window)
    keys = int(np.count_nonzero((reference > 0) | (current > 0)))
    test = own.method or methods.default_test(False, profile.count, keys)
    psi = methods.psi(reference, current)
    if test == StatTest.CHI_SQUARE:
        score = methods.chi_square_p(reference, current)
    elif test == StatTest.Z:
        score = methods.z_test_p(reference, current)
    elif test == StatTest.JENSEN_SHANNON:
        score = methods.jensen_shannon(reference, current)
    else:
        score = psi
    unseen_share = window.unseen_count / n
    return _finish(name, test, score, 0.0, psi, own, config, nan_share, unseen_share, n, note)


def _aligned_categories(
    profile: CategoricalProfile, window: CategoricalWindow
) -> tuple[FloatArray, FloatArray, str]:
    """Reference and window counts over the union of categories (empty ones dropped)."""
    reference = [profile.counts.astype(np.float64)]
    current = [window.counts.astype(np.float64)]
    note = ""
    if profile.other_count > 0:
        # The reference kept only its most frequent categories: an unseen window category may
        # be one of the rest, so all of them are compared as one "other" category.
        reference.append(np.array([profile.other_count], dtype=np.float64))
        current.append(np.array([window.unseen_count], dtype=np.float64))
        note = "rare reference categories compared as one"
    else:
        unseen = sorted(window.unseen.items())
        reference.append(np.zeros(len(unseen) + (1 if window.unseen_other else 0)))
        current.append(np.array([c for _, c in unseen], dtype=np.float64))
        if window.unseen_other:
            current.append(np.array([window.unseen_other], dtype=np.float64))
            note = "unseen categories past 256 compared as one"
    ref = np.concatenate(reference)
    cur = np.concatenate(current)
    used = (ref > 0) | (cur > 0)
    return ref[used], cur[used], note
