from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from mlplane_contracts.events import DeploymentPhase, ScanVerdict
from mlplane_contracts.scopes import DEPLOY_APPROVE, DEPLOY_WRITE
from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    FreezeWindow,
    WeeklyFreeze,
    default_environments,
)
from mlplane_deployer.domain.errors import (
    InvalidDeploymentPolicy,
    InvalidEnvironments,
    UnknownEnvironment,
)
from mlplane_deployer.domain.policy import (
    Approval,
    DenialCode,
    DeploymentFacts,
    DeploymentPolicy,
    DeploymentRequest,
    Lineage,
    ScanFact,
    default_policy,
    evaluate,
)

DIGEST = "sha256:" + "a" * 64
NOW = datetime(2026, 12, 16, 10, 0, tzinfo=UTC)  # a Wednesday


def _team() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _request(team: str, environment: str, requested_by: str = "alice") -> DeploymentRequest:
    return DeploymentRequest(team, "fraud", 7, environment, DIGEST, requested_by)


def _good_facts(**changes: object) -> DeploymentFacts:
    base: dict[str, object] = {
        "now": NOW,
        "scan": ScanFact(DIGEST, ScanVerdict.PASSED, 3),
        "current_scan_policy_version": 3,
        "previous_phase": DeploymentPhase.HEALTHY,
        "approvals": (Approval("bob", frozenset({DEPLOY_APPROVE})),),
        "lineage": Lineage(commit="c" * 40, ci_run="gh-123"),
    }
    base.update(changes)
    return DeploymentFacts(**base)  # type: ignore[arg-type]


class TestEvaluate:
    def test_prod_with_every_fact_in_order_is_allowed(self) -> None:
        team = _team()
        decision = evaluate(default_policy(team), _request(team, "prod"), _good_facts())
        assert decision.allowed
        assert decision.reasons == ()
        assert decision.counted_approvals == ("bob",)

    def test_decision_records_the_policy_version(self) -> None:
        team = _team()
        policy = default_policy(team).with_rules("dev", EnvironmentRules(approvals_required=0))
        decision = evaluate(policy, _request(team, "dev"), _good_facts())
        assert policy.version == 1
        assert decision.policy_version == 1

    def test_unscanned_digest_is_denied(self) -> None:
        team = _team()
        decision = evaluate(default_policy(team), _request(team, "dev"), _good_facts(scan=None))
        assert decision.codes() == {DenialCode.SCAN_MISSING}

    @pytest.mark.parametrize("verdict", [ScanVerdict.FAILED, ScanVerdict.ERROR])
    def test_scan_not_passed_is_denied(self, verdict: ScanVerdict) -> None:
        team = _team()
        facts = _good_facts(scan=ScanFact(DIGEST, verdict, 3))
        decision = evaluate(default_policy(team), _request(team, "dev"), facts)
        assert decision.codes() == {DenialCode.SCAN_NOT_PASSED}
        assert verdict.value in decision.reasons[0].detail

    def test_verdict_under_an_older_scan_policy_does_not_count(self) -> None:
        team = _team()
        facts = _good_facts(current_scan_policy_version=4)
        decision = evaluate(default_policy(team), _request(team, "dev"), facts)
        assert decision.codes() == {DenialCode.SCAN_POLICY_OUTDATED}

    def test_scan_of_another_digest_does_not_count(self) -> None:
        team = _team()
        facts = _good_facts(scan=ScanFact("sha256:" + "b" * 64, ScanVerdict.PASSED, 3))
        decision = evaluate(default_policy(team), _request(team, "dev"), facts)
        assert decision.codes() == {DenialCode.SCAN_OTHER_DIGEST}

    @pytest.mark.parametrize(
        "phase", [None, DeploymentPhase.SYNCING, DeploymentPhase.DEGRADED, DeploymentPhase.FAILED]
    )
    def test_version_not_healthy_in_previous_environment_is_denied(
        self, phase: DeploymentPhase | None
    ) -> None:
        team = _team()
        decision = evaluate(
            default_policy(team), _request(team, "staging"), _good_facts(previous_phase=phase)
        )
        assert decision.codes() == {DenialCode.NOT_HEALTHY_IN_PREVIOUS}
        assert "dev" in decision.reasons[0].detail

    def test_first_environment_has_no_previous_to_be_healthy_in(self) -> None:
        team = _team()
        decision = evaluate(
            default_policy(team), _request(team, "dev"), _good_facts(previous_phase=None)
        )
        assert decision.allowed

    def test_requester_cannot_approve_their_own_deployment(self) -> None:
        team = _team()
        facts = _good_facts(approvals=(Approval("alice", frozenset({DEPLOY_APPROVE})),))
        decision = evaluate(default_policy(team), _request(team, "prod"), facts)
        assert decision.codes() == {DenialCode.APPROVALS_MISSING}
        assert "requester alice cannot approve" in decision.reasons[0].detail
        assert decision.counted_approvals == ()

    def test_approval_without_the_approve_scope_does_not_count(self) -> None:
        team = _team()
        facts = _good_facts(approvals=(Approval("mallory", frozenset({DEPLOY_WRITE})),))
        decision = evaluate(default_policy(team), _request(team, "prod"), facts)
        assert decision.codes() == {DenialCode.APPROVALS_MISSING}
        assert "mallory" in decision.reasons[0].detail

    def test_the_same_approver_twice_counts_once(self) -> None:
        team = _team()
        policy = default_policy(team).with_rules(
            "prod", EnvironmentRules(approvals_required=2, require_lineage=True)
        )
        approve = frozenset({DEPLOY_APPROVE})
        twice = _good_facts(approvals=(Approval("bob", approve), Approval("bob", approve)))
        assert evaluate(policy, _request(team, "prod"), twice).codes() == {
            DenialCode.APPROVALS_MISSING
        }
        two = _good_facts(approvals=(Approval("bob", approve), Approval("carol", approve)))
        decision = evaluate(policy, _request(team, "prod"), two)
        assert decision.allowed
        assert decision.counted_approvals == ("bob", "carol")

    def test_freeze_window_denies_inside_and_allows_at_its_end(self) -> None:
        team = _team()
        window = FreezeWindow(NOW - timedelta(hours=1), NOW + timedelta(hours=1), "year end")
        policy = default_policy(team).with_rules(
            "dev", EnvironmentRules(require_healthy_in_previous=False, freeze_windows=(window,))
        )
        inside = evaluate(policy, _request(team, "dev"), _good_facts())
        assert inside.codes() == {DenialCode.FROZEN}
        assert "year end" in inside.reasons[0].detail
        at_end = evaluate(policy, _request(team, "dev"), _good_facts(now=window.end))
        assert at_end.allowed

    def test_weekly_freeze_follows_local_time_across_daylight_saving(self) -> None:
        friday_evening = WeeklyFreeze("Europe/Berlin", 5, time(16, 0), 1, time(8, 0))
        # Friday 16:30 Berlin is 14:30 UTC in summer (CEST) and 15:30 UTC in winter (CET).
        assert friday_evening.covers(datetime(2026, 7, 3, 14, 30, tzinfo=UTC))
        assert not friday_evening.covers(datetime(2026, 12, 18, 14, 30, tzinfo=UTC))
        assert friday_evening.covers(datetime(2026, 12, 18, 15, 30, tzinfo=UTC))
        # Wraps over the week's end: Sunday and early Monday are frozen, Monday 08:00 is not.
        assert friday_evening.covers(datetime(2026, 12, 20, 12, 0, tzinfo=UTC))
        assert friday_evening.covers(datetime(2026, 12, 21, 6, 59, tzinfo=UTC))
        assert not friday_evening.covers(datetime(2026, 12, 21, 7, 0, tzinfo=UTC))
        assert not friday_evening.covers(NOW)

    def test_prod_refuses_a_version_without_lineage(self) -> None:
        team = _team()
        decision = evaluate(
            default_policy(team), _request(team, "prod"), _good_facts(lineage=Lineage(commit="c"))
        )
        assert decision.codes() == {DenialCode.LINEAGE_MISSING}
        assert "CI run" in decision.reasons[0].detail

    def test_dev_accepts_a_version_without_lineage(self) -> None:
        team = _team()
        decision = evaluate(
            default_policy(team), _request(team, "dev"), _good_facts(lineage=Lineage())
        )
        assert decision.allowed

    def test_denial_lists_every_failed_rule(self) -> None:
        team = _team()
        window = FreezeWindow(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
        policy = default_policy(team).with_rules(
            "prod",
            EnvironmentRules(approvals_required=1, require_lineage=True, freeze_windows=(window,)),
        )
        facts = DeploymentFacts(
            now=NOW,
            scan=ScanFact(DIGEST, ScanVerdict.FAILED, 2),
            current_scan_policy_version=3,
            previous_phase=DeploymentPhase.DEGRADED,
            approvals=(Approval("alice", frozenset({DEPLOY_APPROVE})),),
        )
        decision = evaluate(policy, _request(team, "prod"), facts)
        assert not decision.allowed
        assert decision.codes() == {
            DenialCode.SCAN_NOT_PASSED,
            DenialCode.SCAN_POLICY_OUTDATED,
            DenialCode.NOT_HEALTHY_IN_PREVIOUS,
            DenialCode.APPROVALS_MISSING,
            DenialCode.FROZEN,
            DenialCode.LINEAGE_MISSING,
        }

    def test_unknown_environment_is_refused(self) -> None:
        team = _team()
        with pytest.raises(UnknownEnvironment):
            evaluate(default_policy(team), _request(team, "qa"), _good_facts())

    def test_another_teams_policy_cannot_decide(self) -> None:
        with pytest.raises(InvalidDeploymentPolicy):
            evaluate(default_policy(_team()), _request(_team(), "dev"), _good_facts())

    def test_naive_time_is_refused(self) -> None:
        team = _team()
        with pytest.raises(InvalidDeploymentPolicy):
            evaluate(
                default_policy(team),
                _request(team, "dev"),
                _good_facts(now=datetime(2026, 1, 1)),
            )


class TestDeploymentPolicy:
    def test_every_edit_is_the_next_version(self) -> None:
        team = _team()
        policy = default_policy(team)
        edited = policy.with_rules("staging", EnvironmentRules(approvals_required=1))
        again = edited.with_environments(default_environments(team))
        assert (policy.version, edited.version, again.version) == (0, 1, 2)
        assert policy.environments.get("staging").rules.approvals_required == 0

    def test_environments_of_another_team_are_refused(self) -> None:
        with pytest.raises(InvalidDeploymentPolicy):
            default_policy(_team()).with_environments(default_environments(_team()))

    def test_negative_version_is_refused(self) -> None:
        team = _team()
        with pytest.raises(InvalidDeploymentPolicy):
            DeploymentPolicy(default_environments(team), -1)


class TestFreezeWindows:
    def test_naive_window_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            FreezeWindow(datetime(2026, 1, 1), datetime(2026, 1, 2))

    def test_empty_window_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            FreezeWindow(NOW, NOW)

    def test_unknown_timezone_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            WeeklyFreeze("Mars/Olympus", 5, time(16), 1, time(8))
