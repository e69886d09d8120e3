"""What an Argo CD Application's status says about a deployment's phase. Pure, no I/O.

Precedence, first match wins:

1. not yet at the deployment's revision (`status.sync.revision` differs) → no evidence;
2. `operationState.phase` Failed or Error for this revision → `failed`;
3. `operationState.phase` Running or Terminating → `syncing`;
4. `health.status` Degraded → `degraded`;
5. sync Synced and health Healthy → `healthy`;
6. sync OutOfSync, or health Progressing, Missing or Suspended → `syncing`;
7. sync or health Unknown (a ComparisonError, the repo server down) → no evidence:
   the deployment keeps its phase and the follower's timeout decides.

"No evidence" is `None`: Argo CD has not said anything about this revision yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlplane_contracts.events import DeploymentPhase as P


@dataclass(frozen=True, slots=True)
class ArgoStatus:
    """The parts of an Application's `.status` the deployer reads."""

    sync: str | None = None
    health: str | None = None
    operation: str | None = None
    revision: str | None = None
    operation_revision: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, application: dict[str, Any]) -> ArgoStatus:
        """Read from an Application object as the API server returns it."""
        status = application.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        operation = status.get("operationState") or {}
        op_sync = (operation.get("operation") or {}).get("sync") or {}
        messages = [
            health.get("message"),
            operation.get("message") if operation.get("phase") in _OPERATION_FAILED else None,
            *(
                f"{c.get('type')}: {c.get('message')}"
                for c in status.get("conditions") or []
                if str(c.get("type", "")).endswith("Error")
            ),
        ]
        return cls(
            sync=sync.get("status"),
            health=health.get("status"),
            operation=operation.get("phase"),
            revision=sync.get("revision"),
            operation_revision=op_sync.get("revision")
            or (operation.get("syncResult") or {}).get("revision"),
            message="; ".join(m for m in messages if m) or None,
        )

    def describe(self) -> str:
        parts = [f"sync={self.sync or '-'}", f"health={self.health or '-'}"]
        if self.operation:
            parts.append(f"operation={self.operation}")
        if self.revision:
            parts.append(f"revision={self.revision[:12]}")
        text = ", ".join(parts)
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True, slots=True)
class ObservedPhase:
    phase: P
    reason: str


_OPERATION_FAILED = frozenset({"Failed", "Error"})
_OPERATION_RUNNING = frozenset({"Running", "Terminating"})
_HEALTH_ON_THE_WAY = frozenset({"Progressing", "Missing", "Suspended"})


def _same_revision(expected: str, seen: str | None) -> bool:
    # Argo CD reports full SHAs; the deployer may hold a full or an abbreviated one.
    return seen is not None and (seen.startswith(expected) or expected.startswith(seen))


def phase_of(status: ArgoStatus, expected_revision: str | None = None) -> ObservedPhase | None:
    """The deployment phase `status` shows for `expected_revision` (any when None).

    None when the status says nothing yet about that revision (see the module doc).
    """
    if expected_revision is not None and not _same_revision(expected_revision, status.revision):
        return None
    this_operation = (
        expected_revision is None
        or status.operation_revision is None
        or (_same_revision(expected_revision, status.operation_revision))
    )
    reason = status.describe()
    if status.operation in _OPERATION_FAILED and this_operation:
        return ObservedPhase(P.FAILED, reason)
    if status.operation in _OPERATION_RUNNING and this_operation:
        return ObservedPhase(P.SYNCING, reason)
    if status.health == "Degraded":
        return ObservedPhase(P.DEGRADED, reason)
    if status.sync == "Synced" and status.health == "Healthy":
        return ObservedPhase(P.HEALTHY, reason)
    if status.sync == "OutOfSync" or status.health in _HEALTH_ON_THE_WAY:
        return ObservedPhase(P.SYNCING, reason)
    return None
