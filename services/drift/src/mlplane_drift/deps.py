"""What the drift service's routes take from one hosting, as one typed dependency alias.

`main.build` makes a `HostedDrift` per hosting; the host binds it to each request of
the service's routes, and a route takes it as `drift: Drift`. The unit of work, team
and principal come from `mlplane_runtime.deps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork

from mlplane_drift.blobs import BlobStore
from mlplane_drift.profiles import ProfileCache
from mlplane_drift.service import DriftService
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import DriftTables
from mlplane_drift.worker import VerdictWorker


@dataclass(frozen=True, slots=True)
class HostedDrift:
    """One hosted drift service: its tables, settings, object storage, profile cache,
    verdict worker and clock; `service(uow)` gives its use cases on `uow`."""

    name: str
    tables: DriftTables
    settings: DriftSettings
    blobs: BlobStore
    profiles: ProfileCache
    worker: VerdictWorker
    clock: Callable[[], datetime]

    def service(self, uow: UnitOfWork) -> DriftService:
        return DriftService(
            uow, self.tables, self.settings, self.blobs, self.profiles, clock=self.clock
        )


Drift = Annotated[HostedDrift, Depends(resources(HostedDrift))]
