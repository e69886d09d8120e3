"""The registry as a plug-in of the mlplane platform: `plugin` is its entry point."""

from __future__ import annotations

from pathlib import Path

from mlplane_runtime.service import ServicePlugin

from mlplane_registry import api, handlers, mlflow_api
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import SCHEMA, define_tables

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def make_plugin(name: str = "registry", schema: str = SCHEMA) -> ServicePlugin:
    """The registry called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_REGISTRY_*` setting fails the host's start (pydantic's ValidationError).
    """
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        handlers=handlers.event_handlers(tables),
        # Settings are read when the host builds the routers, not at import (discovery).
        routers=lambda context: [
            *api.routers(tables, context.uow_factory, settings := RegistrySettings()),
            *mlflow_api.routers(tables, context.uow_factory, settings),
        ],
    )


plugin = make_plugin()
