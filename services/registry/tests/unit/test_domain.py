"""The version lifecycle: facts applied by event time and sequence, never by arrival."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from mlplane_registry.domain import (
    BuildFact,
    BuildStatus,
    DeploymentFact,
    EventStamp,
    InvalidName,
    InvalidTransition,
    Lifecycle,
    ScanFact,
    VersionStage,
    apply_build,
    apply_deployment,
    apply_scan,
    check_dns_label,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int, sequence: int = -1) -> EventStamp:
    return EventStamp(T0 + timedelta(seconds=seconds), sequence)


BUILT = BuildFact(BuildStatus.BUILT, at(10), "reg/ml/fraud@sha256:" + "a" * 64)
SCANNED = ScanFact("passed", at(20), "reg/ml/fraud@sha256:" + "a" * 64)
HEALTHY_DEV = DeploymentFact("healthy", at(30), "d1")


def apply(lifecycle: Lifecycle, fact: object) -> Lifecycle:
    if isinstance(fact, BuildFact):
        return apply_build(lifecycle, fact).lifecycle
    if isinstance(fact, ScanFact):
        return apply_scan(lifecycle, fact).lifecycle
    assert isinstance(fact, tuple)
    environment, deployment = fact
    return apply_deployment(lifecycle, environment, deployment).lifecycle


class TestStages:
    def test_a_new_version_is_registered(self) -> None:
        assert Lifecycle().stage is VersionStage.REGISTERED

    def test_the_happy_path_goes_built_scanned_deployed(self) -> None:
        lc = apply_build(Lifecycle(), BuildFact(BuildStatus.BUILDING, at(5))).lifecycle
        assert lc.stage is VersionStage.BUILDING
        lc = apply_build(lc, BUILT).lifecycle
        assert lc.stage is VersionStage.BUILT
        lc = apply_scan(lc, SCANNED).lifecycle
        assert (lc.stage, lc.scan_verdict) == (VersionStage.SCANNED, "passed")
        lc = apply_deployment(lc, "dev", HEALTHY_DEV).lifecycle
        assert lc.stage is VersionStage.DEPLOYED
        assert lc.deployed_environments == ("dev",)

    def test_a_build_failure_is_its_own_stage(self) -> None:
        failed = BuildFact(BuildStatus.FAILED, at(10), reason="base image missing")
        assert apply_build(Lifecycle(), failed).lifecycle.stage is VersionStage.BUILD_FAILED

    def test_a_failed_deployment_leaves_the_version_scanned(self) -> None:
        lc = apply(apply(apply(Lifecycle(), BUILT), SCANNED), ("dev", HEALTHY_DEV))
        lc = apply_deployment(lc, "dev", DeploymentFact("rolled_back", at(40))).lifecycle
        assert lc.stage is VersionStage.SCANNED
        assert lc.deployed_environments == ()

    def test_lifecycle_round_trips_through_json(self) -> None:
        lc = apply(apply(apply(Lifecycle(), BUILT), SCANNED), ("dev", HEALTHY_DEV))
        assert Lifecycle.from_json(lc.as_json()) == lc


class TestOutOfOrder:
    @pytest.mark.parametrize(
        "order", list(itertools.permutations([BUILT, SCANNED, ("dev", HEALTHY_DEV)]))
    )
    def test_any_arrival_order_ends_in_the_same_state(self, order: tuple[object, ...]) -> None:
        lc = Lifecycle()
        for fact in order:
            lc = apply(lc, fact)
        assert lc.stage is VersionStage.DEPLOYED
        assert lc.build == BUILT
        assert lc.scan == SCANNED

    def test_an_older_fact_of_the_same_kind_is_stale_not_an_error(self) -> None:
        newer = ScanFact("failed", at(50))
        lc = apply(Lifecycle(), newer)
        outcome = apply_scan(lc, SCANNED)
        assert outcome.stale
        assert outcome.lifecycle == lc
        assert outcome.reason is not None
        assert "stale" in outcome.reason

    def test_a_redelivered_fact_is_stale(self) -> None:
        lc = apply(Lifecycle(), BUILT)
        assert apply_build(lc, BUILT).stale

    def test_sequence_breaks_a_tie_in_time(self) -> None:
        first = DeploymentFact("progressing", at(30, sequence=1))
        second = DeploymentFact("healthy", at(30, sequence=2))
        lc = apply_deployment(Lifecycle(), "prod", second).lifecycle
        assert apply_deployment(lc, "prod", first).stale
        assert lc.deployments["prod"].phase == "healthy"

    def test_environments_have_their_own_history(self) -> None:
        staging = DeploymentFact("healthy", at(60))
        lc = apply(apply(apply(Lifecycle(), BUILT), SCANNED), ("staging", staging))
        lc = apply(lc, ("dev", HEALTHY_DEV))  # older, but of another environment
        assert lc.deployed_environments == ("dev", "staging")

    def test_a_late_build_result_does_not_move_a_scanned_version_back(self) -> None:
        lc = apply(apply(Lifecycle(), SCANNED), BUILT)
        assert lc.stage is VersionStage.SCANNED


class TestBuilding:
    def test_a_build_start_moves_a_registered_version_to_building(self) -> None:
        lc = apply(Lifecycle(), BuildFact(BuildStatus.BUILDING, at(5)))
        assert lc.stage is VersionStage.BUILDING
        assert apply(lc, BUILT).stage is VersionStage.BUILT

    def test_a_start_after_the_result_is_stale_by_time(self) -> None:
        lc = apply(Lifecycle(), BUILT)
        assert apply_build(lc, BuildFact(BuildStatus.BUILDING, at(5))).stale

    def test_rebuilding_the_scanned_image_changes_nothing(self) -> None:
        # Builds are reproducible: a rebuild after the scan starts and gives the same image.
        lc = apply(apply(Lifecycle(), BUILT), SCANNED)
        started = apply_build(lc, BuildFact(BuildStatus.BUILDING, at(40)))
        assert started.stale
        again = apply_build(lc, BuildFact(BuildStatus.BUILT, at(41), BUILT.image))
        assert again.stale
        assert again.lifecycle.stage is VersionStage.SCANNED

    def test_a_rebuild_giving_another_image_after_the_scan_is_refused(self) -> None:
        lc = apply(apply(Lifecycle(), BUILT), SCANNED)
        other = "reg/ml/fraud@sha256:" + "b" * 64
        with pytest.raises(InvalidTransition, match="never rebuilt"):
            apply_build(lc, BuildFact(BuildStatus.BUILT, at(41), other))


class TestRefusedTransitions:
    def test_a_build_result_after_the_scan_is_refused(self) -> None:
        lc = apply(apply(Lifecycle(), BUILT), SCANNED)
        with pytest.raises(InvalidTransition, match="never rebuilt"):
            apply_build(lc, BuildFact(BuildStatus.FAILED, at(25), reason="boom"))

    def test_a_scan_before_a_later_build_failure_is_refused(self) -> None:
        lc = apply(Lifecycle(), BuildFact(BuildStatus.FAILED, at(30), reason="boom"))
        with pytest.raises(InvalidTransition, match="build is build_failed"):
            apply_scan(lc, SCANNED)

    def test_serving_a_version_whose_build_failed_is_refused(self) -> None:
        lc = apply(Lifecycle(), BuildFact(BuildStatus.FAILED, at(10), reason="no base image"))
        with pytest.raises(InvalidTransition, match="no image to serve") as refused:
            apply_deployment(lc, "dev", HEALTHY_DEV)
        assert refused.value.extensions["attempted"] == "deployed"

    def test_serving_after_a_failed_scan_is_refused(self) -> None:
        lc = apply(apply(Lifecycle(), BUILT), ScanFact("failed", at(20)))
        with pytest.raises(InvalidTransition, match="scan failed"):
            apply_deployment(lc, "prod", HEALTHY_DEV)

    def test_a_refused_fact_is_a_non_retryable_conflict(self) -> None:
        assert InvalidTransition.status == 409
        assert not InvalidTransition.retryable


class TestNames:
    @pytest.mark.parametrize("name", ["fraud", "a", "fraud-v2", "0x", "a" * 63])
    def test_dns_labels_are_accepted(self, name: str) -> None:
        assert check_dns_label(name, "name") == name

    @pytest.mark.parametrize("name", ["", "Fraud", "-a", "a-", "a_b", "a.b", "a" * 64])
    def test_other_names_are_refused_naming_the_field(self, name: str) -> None:
        with pytest.raises(InvalidName) as refused:
            check_dns_label(name, "alias")
        assert refused.value.extensions["field"] == "alias"
