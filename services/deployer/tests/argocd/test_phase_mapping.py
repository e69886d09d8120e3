"""The pure mapping from an Application's status to a deployment phase."""

from __future__ import annotations

from typing import Any

import pytest
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.argocd.phase_mapping import ArgoStatus, phase_of

SHA = "a" * 40
OLD = "b" * 40


def status(
    sync: str | None = None,
    health: str | None = None,
    operation: str | None = None,
    revision: str | None = SHA,
    op_revision: str | None = SHA,
    **extra: Any,
) -> ArgoStatus:
    body: dict[str, Any] = {}
    if sync:
        body["sync"] = {"status": sync, "revision": revision}
    if health:
        body["health"] = {"status": health, "message": extra.get("health_message")}
    if operation:
        body["operationState"] = {
            "phase": operation,
            "message": extra.get("operation_message"),
            "operation": {"sync": {"revision": op_revision}},
        }
    if "conditions" in extra:
        body["conditions"] = extra["conditions"]
    return ArgoStatus.of({"status": body})


class TestPhaseOf:
    @pytest.mark.parametrize(
        ("argo", "phase"),
        [
            (status("Synced", "Healthy"), P.HEALTHY),
            (status("Synced", "Healthy", "Succeeded"), P.HEALTHY),
            (status("OutOfSync", "Healthy"), P.SYNCING),
            (status("OutOfSync", "Missing"), P.SYNCING),
            (status("Synced", "Progressing"), P.SYNCING),
            (status("Synced", "Suspended"), P.SYNCING),
            (status("OutOfSync", "Healthy", "Running"), P.SYNCING),
            (status("Synced", "Healthy", "Terminating"), P.SYNCING),
            (status("Synced", "Degraded"), P.DEGRADED),
            (status("OutOfSync", "Missing", "Failed"), P.FAILED),
            (status("OutOfSync", "Healthy", "Error"), P.FAILED),
        ],
    )
    def test_status_maps_to_its_phase(self, argo: ArgoStatus, phase: P) -> None:
        observed = phase_of(argo, SHA)
        assert observed is not None
        assert observed.phase is phase

    def test_unknown_sync_and_health_are_no_evidence(self) -> None:
        assert phase_of(status("Unknown", "Unknown"), SHA) is None
        assert phase_of(status(), SHA) is None

    def test_status_of_an_older_revision_is_no_evidence(self) -> None:
        assert phase_of(status("Synced", "Healthy", revision=OLD), SHA) is None

    def test_abbreviated_revision_matches_the_full_one(self) -> None:
        observed = phase_of(status("Synced", "Healthy"), SHA[:12])
        assert observed is not None
        assert observed.phase is P.HEALTHY

    def test_failed_operation_of_an_older_revision_does_not_fail_this_one(self) -> None:
        observed = phase_of(status("OutOfSync", "Healthy", "Failed", op_revision=OLD), SHA)
        assert observed is not None
        assert observed.phase is P.SYNCING

    def test_any_revision_when_none_is_expected(self) -> None:
        observed = phase_of(status("Synced", "Healthy", revision=OLD))
        assert observed is not None
        assert observed.phase is P.HEALTHY

    def test_reason_carries_the_failure_messages(self) -> None:
        argo = status(
            "OutOfSync",
            "Degraded",
            "Failed",
            operation_message="one or more objects failed to apply",
            health_message="exceeded its progress deadline",
            conditions=[{"type": "SyncError", "message": "quota exceeded"}],
        )
        observed = phase_of(argo, SHA)
        assert observed is not None
        assert observed.phase is P.FAILED
        for text in ("failed to apply", "progress deadline", "SyncError: quota exceeded"):
            assert text in observed.reason
