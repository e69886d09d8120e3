from __future__ import annotations

import pytest
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.domain.errors import InvalidPhaseTransition
from mlplane_deployer.domain.phases import DEPLOYER_PHASES, transition


class TestTransition:
    @pytest.mark.parametrize(
        ("current", "target"),
        [
            (P.PENDING, P.COMMITTED),
            (P.COMMITTED, P.SYNCING),
            (P.SYNCING, P.HEALTHY),
            (P.HEALTHY, P.DEGRADED),
            (P.DEGRADED, P.HEALTHY),
            (P.SYNCING, P.FAILED),
            (P.FAILED, P.ROLLED_BACK),
            (P.HEALTHY, P.ROLLED_BACK),
            (P.HEALTHY, P.SYNCING),
        ],
    )
    def test_allowed_move_is_a_change_naming_who_caused_it(self, current: P, target: P) -> None:
        change = transition(current, target, caused_by="argocd", reason="sync")
        assert change is not None
        assert (change.previous, change.phase, change.caused_by) == (current, target, "argocd")

    @pytest.mark.parametrize("phase", sorted(DEPLOYER_PHASES))
    def test_the_same_phase_again_is_no_change(self, phase: P) -> None:
        assert transition(phase, phase, caused_by="watch") is None

    @pytest.mark.parametrize(
        ("current", "target"),
        [
            (P.PENDING, P.HEALTHY),
            (P.ROLLED_BACK, P.HEALTHY),
            (P.FAILED, P.HEALTHY),
            (P.HEALTHY, P.PENDING),
            (P.PENDING, P.ROLLED_BACK),
        ],
    )
    def test_forbidden_move_is_refused(self, current: P, target: P) -> None:
        with pytest.raises(InvalidPhaseTransition):
            transition(current, target, caused_by="x")

    def test_phases_the_deployer_does_not_use_are_refused(self) -> None:
        with pytest.raises(InvalidPhaseTransition):
            transition(P.PENDING, P.RENDERED, caused_by="x")

    def test_rolled_back_is_final(self) -> None:
        for target in DEPLOYER_PHASES - {P.ROLLED_BACK}:
            with pytest.raises(InvalidPhaseTransition):
                transition(P.ROLLED_BACK, target, caused_by="x")
