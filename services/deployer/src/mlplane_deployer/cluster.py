"""The seam to a cluster: what the job calls once a deployment's commit is pushed.

`argocd/sync.py` implements `ClusterSync`: ensure the model and environment's
`Application`, then watch it and report each phase through
`DeploymentService.observe_phase` in a unit of work of its own. With no cluster
configured (embedded mode) there is none, and a deployment stops at `committed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """One pushed deployment: where its overlay is in the GitOps repository, at which commit."""

    deployment_id: UUID
    team: str
    model: str
    environment: str
    version: int
    overlay_path: str
    commit: str
    repo_url: str
    revision: str
    trace_id: str | None = None
    phase: DeploymentPhase = DeploymentPhase.COMMITTED
    """The phase recorded with the commit (`syncing` for a later canary step)."""
    image_repository: str = ""
    digest: str = ""


class ClusterSync(Protocol):
    async def after_push(self, target: SyncTarget) -> None:
        """Make the cluster follow `target` (idempotent: called again after a retry).

        Raising marks nothing: the deployment stays `committed` and the error is
        logged; the implementation retries or reports `failed` through
        `observe_phase` itself.
        """
        ...
