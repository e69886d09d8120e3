"""How bad a verdict is, and when to say so: severity and hysteresis, as pure functions.

Severity: `severe` when the dataset drifted (the drifted share reached its threshold),
`warning` when some features drifted but fewer, None when nothing drifted.

Hysteresis keeps a persistent drift from firing `drift.detected` on every window: an alert
fires when a model version enters drift or its severity rises above the highest one
already reported; it re-arms only after `rearm_after` clean windows in a row. The state is a
small frozen object the service stores between windows (`to_dict`/`from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlplane_contracts.events import DriftSeverity

from mlplane_drift.detect import DriftVerdict
from mlplane_drift.errors import DriftInputError

_RANK = {None: 0, DriftSeverity.WARNING: 1, DriftSeverity.SEVERE: 2}


def severity_of(verdict: DriftVerdict) -> DriftSeverity | None:
    """`severe` if the dataset drifted, `warning` if any feature did, else None."""
    if verdict.dataset_drifted:
        return DriftSeverity.SEVERE
    if verdict.drifted_features:
        return DriftSeverity.WARNING
    return None


@dataclass(frozen=True)
class HysteresisState:
    reported: DriftSeverity | None = None
    """The highest severity reported since the last re-arm (None: armed, nothing reported)."""
    clean_windows: int = 0
    """Clean windows in a row since the last drifted one."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reported": None if self.reported is None else str(self.reported),
            "clean_windows": self.clean_windows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HysteresisState:
        try:
            reported = data.get("reported")
            clean = int(data.get("clean_windows", 0))
            return cls(None if reported is None else DriftSeverity(reported), max(clean, 0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise DriftInputError(f"hysteresis state is not valid: {exc}") from exc


@dataclass(frozen=True)
class Hysteresis:
    rearm_after: int = 3
    """Clean windows in a row after which a new drift fires again."""

    def __post_init__(self) -> None:
        if self.rearm_after < 1:
            raise DriftInputError("rearm_after must be at least 1")

    def step(
        self, state: HysteresisState, severity: DriftSeverity | None
    ) -> tuple[HysteresisState, DriftSeverity | None]:
        """The state after one window of `severity`, and the severity to fire (or None)."""
        if severity is None:
            clean = state.clean_windows + 1
            if clean >= self.rearm_after:
                return HysteresisState(None, clean), None
            return HysteresisState(state.reported, clean), None
        if _RANK[severity] > _RANK[state.reported]:
            return HysteresisState(severity, 0), severity
        return HysteresisState(state.reported, 0), None
