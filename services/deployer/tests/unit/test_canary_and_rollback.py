"""Canary steps and automatic rollback as pure rules; the rules' checks and documents."""

from __future__ import annotations

from uuid import uuid4

import pytest
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_contracts.events import DriftSeverity
from mlplane_deployer.domain.canary import CanaryStep, next_step_due, step_of
from mlplane_deployer.domain.deployments import step_change_id
from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    GatewayRoute,
    ServingKind,
    default_environments,
)
from mlplane_deployer.domain.errors import InvalidEnvironments
from mlplane_deployer.domain.phases import waiting_starts
from mlplane_deployer.domain.policy_document import rules_from_json, rules_to_json
from mlplane_deployer.domain.rollback import drift_rolls_back

GATEWAY = GatewayRoute("public", "gateways")


class TestCanarySteps:
    def test_steps_walk_the_weights_to_the_last(self) -> None:
        weights = (10, 50, 100)
        assert step_of(weights, 0) == CanaryStep(0, 10, 3)
        assert next_step_due(weights, 0) == CanaryStep(1, 50, 3)
        assert next_step_due(weights, 2) is None
        assert next_step_due(weights, None) is None
        assert step_of((), 0) is None

    def test_only_steps_below_100_split_traffic(self) -> None:
        assert CanaryStep(0, 10, 3).splits_traffic
        assert not CanaryStep(2, 100, 3).splits_traffic
        assert CanaryStep(2, 100, 3).is_last

    def test_each_step_has_its_own_change_id_none_inside_another(self) -> None:
        deployment = uuid4()
        ids = [step_change_id(deployment, step) for step in range(12)]
        assert len(set(ids)) == 12
        assert ids[0] == f"deploy-{deployment}"
        for one in ids:
            assert [other for other in ids if one in other] == [one]


class TestCanaryRules:
    def test_weights_climb_to_100(self) -> None:
        EnvironmentRules(canary_weights=(10, 50, 100), gateway=GATEWAY)
        for bad in [(50, 10, 100), (10, 10, 100), (10, 50), (0, 100), (10, 101)]:
            with pytest.raises(InvalidEnvironments):
                EnvironmentRules(canary_weights=bad, gateway=GATEWAY)

    def test_a_kustomize_canary_needs_a_gateway_but_kserve_splits_itself(self) -> None:
        with pytest.raises(InvalidEnvironments, match="gateway"):
            EnvironmentRules(canary_weights=(10, 100))
        EnvironmentRules(canary_weights=(10, 100), serving=ServingKind.KSERVE)

    def test_a_hold_is_bounded(self) -> None:
        with pytest.raises(InvalidEnvironments):
            EnvironmentRules(canary_hold_s=-1)
        with pytest.raises(InvalidEnvironments):
            EnvironmentRules(canary_hold_s=86_401)

    def test_a_gateway_names_kubernetes_objects(self) -> None:
        with pytest.raises(InvalidEnvironments):
            GatewayRoute("Public", "gateways")
        with pytest.raises(InvalidEnvironments):
            GatewayRoute("public", "gateways", hostname="not a host")
        GatewayRoute("public", "gateways", hostname="*.models.example.com")

    def test_the_new_rules_survive_json_and_old_documents_read_as_defaults(self) -> None:
        rules = EnvironmentRules(
            canary_weights=(5, 25, 100),
            canary_hold_s=60,
            gateway=GatewayRoute("public", "gateways", "models.example.com"),
            rollback_on_failure=False,
            rollback_on_drift=DriftSeverity.WARNING,
        )
        assert rules_from_json(rules_to_json(rules)) == rules
        old = rules_from_json({"approvals_required": 1})
        assert (old.canary_weights, old.rollback_on_failure, old.rollback_on_drift) == (
            (),
            True,
            None,
        )


class TestDriftRollback:
    def test_prod_rolls_back_on_severe_drift_by_default_and_the_others_never(self) -> None:
        environments = default_environments("acme")
        assert environments.get("prod").rules.rollback_on_drift is DriftSeverity.SEVERE
        assert environments.get("dev").rules.rollback_on_drift is None

    @pytest.mark.parametrize(
        ("threshold", "severity", "rolls_back"),
        [
            (DriftSeverity.SEVERE, DriftSeverity.SEVERE, True),
            (DriftSeverity.SEVERE, DriftSeverity.WARNING, False),
            (DriftSeverity.WARNING, DriftSeverity.WARNING, True),
            (DriftSeverity.WARNING, DriftSeverity.SEVERE, True),
            (None, DriftSeverity.SEVERE, False),
        ],
    )
    def test_a_drift_at_least_as_severe_as_named_rolls_back(
        self, threshold: DriftSeverity | None, severity: DriftSeverity, rolls_back: bool
    ) -> None:
        rules = EnvironmentRules(rollback_on_drift=threshold)
        assert drift_rolls_back(rules, severity) is rolls_back


class TestWaitingForHealth:
    def test_the_wait_starts_on_entering_it_or_on_a_new_commit(self) -> None:
        assert waiting_starts(P.PENDING, P.COMMITTED, new_commit=True)
        assert not waiting_starts(P.COMMITTED, P.SYNCING, new_commit=False)
        assert not waiting_starts(P.SYNCING, P.DEGRADED, new_commit=False)
        assert waiting_starts(P.HEALTHY, P.DEGRADED, new_commit=False)
        assert waiting_starts(P.DEGRADED, P.SYNCING, new_commit=True)
        assert not waiting_starts(P.SYNCING, P.HEALTHY, new_commit=False)
