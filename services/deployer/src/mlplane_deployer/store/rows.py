"""Rows to the domain's frozen dataclasses, and denial reasons to and from JSON."""

from __future__ import annotations

from typing import Any

from mlplane_contracts.events import DeploymentPhase
from sqlalchemy import Row

from mlplane_deployer.domain.deployments import (
    Deployment,
    DeploymentAction,
    HistoryEntry,
    HistoryKind,
    Work,
    WorkState,
)
from mlplane_deployer.domain.policy import DenialCode, DenialReason


def reasons_json(reasons: tuple[DenialReason, ...]) -> list[dict[str, str]]:
    return [{"code": r.code.value, "detail": r.detail} for r in reasons]


def reasons_from_json(data: list[dict[str, Any]]) -> tuple[DenialReason, ...]:
    return tuple(DenialReason(DenialCode(r["code"]), str(r["detail"])) for r in data)


def deployment_from_row(row: Row[Any]) -> Deployment:
    m = row._mapping
    return Deployment(
        id=m["id"],
        team=m["team"],
        model=m["model"],
        version=m["version"],
        environment=m["environment"],
        image_repository=m["image_repository"],
        digest=m["digest"],
        requested_by=m["requested_by"],
        action=DeploymentAction(m["action"]),
        phase=DeploymentPhase(m["phase"]),
        policy_version=m["policy_version"],
        approvals=tuple(m["approvals"]),
        work=Work(m["work"]),
        work_state=WorkState(m["work_state"]),
        attempts=m["attempts"],
        message=m["message"],
        change_id=m["change_id"],
        gitops_commit=m["gitops_commit"],
        rollback_commit=m["rollback_commit"],
        rolled_back_by=m["rolled_back_by"],
        idempotency_key=m["idempotency_key"],
        traceparent=m["traceparent"],
        tracestate=m["tracestate"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        canary_weights=tuple(m["canary_weights"]),
        canary_step=m["canary_step"],
        waiting_since=m["waiting_since"],
        observed_version=m["observed_version"],
    )


def history_from_row(row: Row[Any]) -> HistoryEntry:
    m = row._mapping
    return HistoryEntry(
        at=m["at"],
        kind=HistoryKind(m["kind"]),
        caused_by=m["caused_by"],
        phase=None if m["phase"] is None else DeploymentPhase(m["phase"]),
        previous_phase=None
        if m["previous_phase"] is None
        else DeploymentPhase(m["previous_phase"]),
        detail=m["detail"],
        policy_version=m["policy_version"],
        reasons=reasons_from_json(m["reasons"]),
    )
