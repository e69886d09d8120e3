"""What the deployer's routes take from one hosting, as one typed dependency alias.

`main.build` makes a `HostedDeployer` per hosting; the host binds it to each request
of the deployer's routes, and a route takes it as `deployer: Deployer`. The unit of
work, team and principal come from `mlplane_runtime.deps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork

from mlplane_deployer.argocd.sync import ArgoCdSync
from mlplane_deployer.service import DeploymentService
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_deployer.worker import DeploymentWorker


@dataclass(frozen=True, slots=True)
class HostedDeployer:
    """One hosted deployer: its tables, settings, use cases and deployment worker."""

    tables: DeployerTables
    settings: DeployerSettings
    service: Callable[[UnitOfWork], DeploymentService]
    worker: DeploymentWorker
    argocd: ArgoCdSync | None = None
    """The Argo CD sync when a cluster is configured (its follower runs as a worker)."""

    def wake(self) -> None:
        """A deployment may be queued: the worker looks now (call it after the commit)."""
        self.worker.wake()


Deployer = Annotated[HostedDeployer, Depends(resources(HostedDeployer))]
