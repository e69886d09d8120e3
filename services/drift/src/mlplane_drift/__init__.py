"""mlplane drift: reference profiles, mergeable window summaries and drift verdicts.

The statistics are pure (no I/O beyond reading Arrow, Parquet or CSV data handed in):
`ReferenceProfile` (profile.py), `WindowSummary` (window.py), `detect` (detect.py),
`severity_of` and `Hysteresis` (severity.py). `mlplane_drift.client` is the small client
model servers use to send prediction samples.
"""

from mlplane_drift.detect import DriftConfig, DriftVerdict, FeatureConfig, FeatureResult, detect
from mlplane_drift.errors import CorruptSummary, DriftInputError, SummaryMismatch
from mlplane_drift.methods import StatTest
from mlplane_drift.profile import FeatureKind, FeatureSpec, ReferenceProfile
from mlplane_drift.severity import Hysteresis, HysteresisState, severity_of
from mlplane_drift.window import WindowSummary

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
    "detect",
    "severity_of",
]
