"""Severity of a verdict and hysteresis over windows."""

from __future__ import annotations

import pytest
from mlplane_contracts.events import DriftSeverity
from mlplane_drift.detect import DriftVerdict, FeatureResult
from mlplane_drift.errors import DriftInputError
from mlplane_drift.methods import StatTest
from mlplane_drift.severity import Hysteresis, HysteresisState, severity_of

W, S = DriftSeverity.WARNING, DriftSeverity.SEVERE


def _verdict(drifted: int, total: int = 4) -> DriftVerdict:
    features = tuple(
        FeatureResult(f"f{i}", StatTest.KS, 0.01, 0.05, i < drifted, 0.0, 0.0, 0.0, "")
        for i in range(total)
    )
    share = drifted / total
    return DriftVerdict(features, share, share >= 0.5, 0.5, 100, 1000)


def test_severity_follows_the_drifted_share() -> None:
    assert severity_of(_verdict(0)) is None
    assert severity_of(_verdict(1)) == W
    assert severity_of(_verdict(2)) == S


def test_hysteresis_fires_on_entering_and_rising_not_on_every_window() -> None:
    hysteresis = Hysteresis(rearm_after=2)
    state = HysteresisState()
    fired = []
    for severity in [None, W, W, S, S, W, None, S, None, None, W, W]:
        state, fire = hysteresis.step(state, severity)
        fired.append(fire)
    # W enters; S rises; one clean window is not enough to re-arm; two are.
    assert fired == [None, W, None, S, None, None, None, None, None, None, W, None]


def test_hysteresis_state_round_trips_and_refuses_garbage() -> None:
    state = HysteresisState(S, 1)
    assert HysteresisState.from_dict(state.to_dict()) == state
    with pytest.raises(DriftInputError):
        HysteresisState.from_dict({"reported": "apocalyptic"})
    with pytest.raises(DriftInputError):
        Hysteresis(rearm_after=0)
