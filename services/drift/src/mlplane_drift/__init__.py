"""mlplane drift: reference profiles, mergeable window summaries and drift verdicts.

The statistics are pure (no I/O beyond reading Arrow, Parquet or CSV data handed in):
`ReferenceProfile` (profile.py), `WindowSummary` (window.py), `detect` (detect.py),
`severity_of` and `Hysteresis` (severity.py). `detect` is imported from its module
(`from mlplane_drift.detect import detect`): the module and function share the name.
`mlplane_drift.client` is the small client model servers use to send prediction samples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplane_drift.detect import (
        DriftConfig,
        DriftVerdict,
        FeatureConfig,
        FeatureResult,
    )
    from mlplane_drift.errors import CorruptSummary, DriftInputError, SummaryMismatch
    from mlplane_drift.methods import StatTest
    from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
    from mlplane_drift.severity import Hysteresis, HysteresisState, severity_of
    from mlplane_drift.window import WindowSummary

# Exports load on first use, so `import mlplane_drift.client` in a model server does not
# pull in numpy, scipy and pyarrow.
_EXPORTS = {
    "DriftConfig": "detect",
    "DriftVerdict": "detect",
    "FeatureConfig": "detect",
    "FeatureResult": "detect",
    "CorruptSummary": "errors",
    "DriftInputError": "errors",
    "SummaryMismatch": "errors",
    "StatTest": "methods",
    "FeatureKind": "profile",
    "FeatureSpec": "profile",
    "ReferenceProfile": "profile",
    "Hysteresis": "severity",
    "HysteresisState": "severity",
    "severity_of": "severity",
    "WindowSummary": "window",
}

__all__ = [
    "CorruptSummary",
    "DriftConfig",
    "DriftInputError",
    "DriftVerdict",
    "FeatureConfig",
    "FeatureKind",
    "FeatureResult",
    "FeatureSpec",
    "Hysteresis",
    "HysteresisState",
    "ReferenceProfile",
    "StatTest",
    "SummaryMismatch",
    "WindowSummary",
    "severity_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlplane_drift' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlplane_drift.{module}"), name)
