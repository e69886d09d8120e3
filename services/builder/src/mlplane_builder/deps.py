"""What the builder's routes take from one hosting, as one typed dependency alias.

`main.build` makes a `HostedBuilder` per hosting; the host binds it to each request
of the builder's routes, and a route takes it as `builder: Builder`. The unit of
work, team and principal come from `mlplane_runtime.deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork

from mlplane_builder.service import BuilderService
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import BuilderTables
from mlplane_builder.worker import BuildWorker


@dataclass(frozen=True, slots=True)
class HostedBuilder:
    """One hosted builder: its tables (in its schema), settings and build worker."""

    tables: BuilderTables
    settings: BuilderSettings
    worker: BuildWorker

    def service(self, uow: UnitOfWork) -> BuilderService:
        """The builder's use cases on `uow`."""
        return BuilderService(uow, self.tables)

    def wake(self) -> None:
        """A build may be waiting: the worker looks now (call it after the commit)."""
        self.worker.wake()


Builder = Annotated[HostedBuilder, Depends(resources(HostedBuilder))]
