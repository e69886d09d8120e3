"""What the registry's routes take from one hosting, as one typed dependency alias.

`main.build` makes a `HostedRegistry` per hosting; the host binds it to each request
of the registry's routes, and a route takes it as `registry: Registry`. The unit of
work, team and principal come from `mlplane_runtime.deps`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_registry.artifacts.wiring import RegistryArtifacts
from mlplane_registry.mlflow.settings import MlflowApiSettings
from mlplane_registry.read_cache import ReadCache
from mlplane_registry.service import RegistryService
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HostedRegistry:
    """One hosted registry: its tables (in its schema), settings and artifact store."""

    tables: RegistryTables
    settings: RegistrySettings
    artifacts: RegistryArtifacts
    mlflow: MlflowApiSettings
    wake_registration: Callable[[], None] = lambda: None
    """Tells the registration worker a pending version was committed."""
    cache: ReadCache = field(default_factory=ReadCache)
    """This worker's answers to the hot reads (see `read_cache`)."""

    async def reading(
        self, readers: UnitOfWorkFactory, fetch: Callable[[RegistryService], Awaitable[T]]
    ) -> T:
        """What `fetch` reads with the registry's use cases, in a read-only unit of work."""
        async with readers.reading() as uow:
            return await fetch(self.service(uow))

    def service(self, uow: UnitOfWork) -> RegistryService:
        """The registry's use cases on `uow`, with the teams' artifact locations."""
        return RegistryService(
            uow, self.tables, self.settings.artifact_locations, self.artifacts.uri_prefix
        )


Registry = Annotated[HostedRegistry, Depends(resources(HostedRegistry))]
