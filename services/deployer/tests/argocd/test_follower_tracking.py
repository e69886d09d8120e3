"""The follower's tracking as the hosted sync uses it: a deadline that counts from when
the wait started (a restart), and a newer branch tip standing for the commit."""

from __future__ import annotations

from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.argocd.follow import PhaseFollower
from mlplane_deployer.argocd.phase_mapping import ArgoStatus
from mlplane_deployer.argocd.watch import ApplicationEvent

SHA = "a" * 40
TIP = "c" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(revision: str, health: str = "Healthy") -> ApplicationEvent:
    status = {"sync": {"status": "Synced", "revision": revision}, "health": {"status": health}}
    return ApplicationEvent("MODIFIED", "app", "7", ArgoStatus.of({"status": status}), {}, {})


def test_a_restarted_follower_keeps_the_deadline_the_wait_started_with() -> None:
    clock = Clock()
    follower = PhaseFollower(clock=clock)
    follower.track("app", revision=SHA, phase=P.SYNCING, timeout_s=600, elapsed_s=590)
    assert follower.next_deadline() == 1010.0
    clock.now = 1011.0
    [expired] = follower.expire()
    assert expired.change.phase is P.FAILED
    assert "not healthy within 600s of syncing" in (expired.change.reason or "")


def test_a_healthy_deployment_has_no_deadline_after_a_restart() -> None:
    follower = PhaseFollower(clock=Clock())
    follower.track("app", revision=SHA, phase=P.HEALTHY, timeout_s=600, elapsed_s=10_000)
    assert follower.next_deadline() is None


def test_a_newer_tip_speaks_for_the_commit_once_retargeted() -> None:
    follower = PhaseFollower(clock=Clock())
    follower.track("app", revision=SHA, phase=P.SYNCING)
    assert follower.observe(event(TIP)) is None  # another commit: no evidence
    follower.retarget("app", TIP)
    change = follower.observe(event(TIP))
    assert change is not None
    assert change.change.phase is P.HEALTHY
    assert follower.revision("app") == TIP
