"""The contract between a service and whatever hosts it: `ServicePlugin` and `ServiceContext`.

A service describes itself once, in a `ServicePlugin` its package exposes through the
`mlplane.services` entry-point group:

    [project.entry-points."mlplane.services"]
    registry = "mlplane_registry.main:plugin"

The host (the embedded platform of `mlplane up`, or `mlplane serve <name>` running
that one service alone in its container) builds the database, unit-of-work factory
and transport, hands them over in a `ServiceContext`, and wires the service's
handlers, routers and lifespan the same way in both cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from fastapi import APIRouter
from mlplane_contracts.topology import queue_name
from sqlalchemy import MetaData

from mlplane_runtime.bus.base import Transport
from mlplane_runtime.caller import CallerDependencies, CallerDependency
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.db import Database, check_schema_name
from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory

ENTRY_POINT_GROUP = "mlplane.services"


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a hosted service is given: its settings and the resources built for it.

    `data_dir` is the service's own directory for local files (artifacts, OCI
    layouts, git checkouts in the embedded mode); it exists when the context is
    handed over. `caller` verifies the gateway's identity token on the service's
    routes (None only for a service that authenticates its callers itself, the
    gateway); `identity_secret` is the platform's secret those tokens are derived
    from, when this process has it (the gateway signs with it).
    """

    name: str
    settings: RuntimeSettings
    database: Database
    uow_factory: UnitOfWorkFactory
    transport: Transport
    data_dir: Path
    caller: CallerDependencies | None = None
    identity_secret: bytes | None = None

    def require_caller(self) -> CallerDependencies:
        """`caller`, or RuntimeError for a service hosted without one (a host's bug)."""
        if self.caller is None:
            raise RuntimeError(f"service {self.name} is hosted without identity verification")
        return self.caller


HandlersFactory = Callable[[ServiceContext], Mapping[str, EventHandler]]
"""Builds the handlers once the context exists (handlers that need adapters or settings)."""

RoutersFactory = Callable[[ServiceContext], Sequence[APIRouter]]
"""Builds the service's own HTTP routers; the host mounts them under the plug-in's `prefix`."""

OwnCallerFactory = Callable[[ServiceContext], CallerDependency]
"""For a service that authenticates its callers itself: its caller dependency."""

ServiceLifespan = Callable[[ServiceContext], AbstractAsyncContextManager[None]]
"""Background work the service runs while hosted (watchers, schedulers); entered after
its consumers and relay start, exited before they stop."""


@dataclass(frozen=True, slots=True)
class ServicePlugin:
    """One service as a host sees it.

    - `name`: the service's name; it names its queue (`mlplane.<name>`), its event
      source (`/mlplane/<name>`) and its URL prefix (`/<name>`).
    - `schema`: its PostgreSQL schema; `metadata` holds its tables there, the
      messaging tables (outbox, inbox) included.
    - `migrations`: its Alembic script directory, or None to create `metadata`'s
      tables directly (services without migrations yet, tests).
    - `handlers`: event type -> handler, or a factory of that mapping taking the
      context. Event types it handles are the bindings of its queue.
    - `routers`: a factory of its HTTP routers, or None for a service with no API.
    - `lifespan`: background work while hosted, or None.
    - `url_prefix`: where its own routes are mounted; None means `/<name>`, `""`
      the root (the gateway, whose public routes are `/v1/...`). Its dead-letter
      API stays under `/<name>` either way.
    - `own_caller`: None for every service the gateway fronts (its callers are
      verified from the gateway's identity token, and it needs an identity key to
      start); the gateway, which authenticates callers itself, gives its own.
    """

    name: str
    schema: str
    metadata: MetaData
    migrations: Path | None = None
    handlers: Mapping[str, EventHandler] | HandlersFactory = field(default_factory=dict)
    routers: RoutersFactory | None = None
    lifespan: ServiceLifespan | None = None
    url_prefix: str | None = None
    own_caller: OwnCallerFactory | None = None

    def __post_init__(self) -> None:
        """Raises ValueError for a name, schema or URL prefix that cannot be used."""
        queue_name(self.name)
        check_schema_name(self.schema)
        prefix = self.url_prefix
        if (
            prefix is not None
            and prefix != ""
            and (not prefix.startswith("/") or prefix.endswith("/"))
        ):
            raise ValueError(
                f"service {self.name!r}: url_prefix {prefix!r} must be empty or start "
                "with '/' and not end with it"
            )
        if self.metadata.schema != self.schema:
            raise ValueError(
                f"service {self.name!r}: its MetaData must use schema {self.schema!r}, "
                f"not {self.metadata.schema!r}"
            )

    @property
    def prefix(self) -> str:
        """The URL prefix of the service's own routes (`/<name>` unless it chose another)."""
        return f"/{self.name}" if self.url_prefix is None else self.url_prefix

    def messaging(self) -> MessagingTables:
        """The outbox and inbox tables in `metadata`, added to it if the service did not.

        A service with Alembic migrations adds them itself (so autogenerate sees
        them); one without may leave them to the host. Raises ValueError when only
        some of them are there.
        """
        tables = self.metadata.tables
        names = [f"{self.schema}.{table}" for table in ("outbox", "outbox_sequence", "inbox")]
        present = [name for name in names if name in tables]
        if not present:
            return messaging_tables(self.metadata)
        if len(present) != len(names):
            raise ValueError(
                f"service {self.name!r}: its MetaData has only some messaging tables "
                f"({', '.join(present)}); add them all with messaging_tables(metadata)"
            )
        outbox, outbox_sequence, inbox = (tables[name] for name in names)
        return MessagingTables(
            schema=self.schema, outbox=outbox, outbox_sequence=outbox_sequence, inbox=inbox
        )

    def handlers_for(self, context: ServiceContext) -> Mapping[str, EventHandler]:
        """The event handlers of this service in `context`, by event type."""
        if isinstance(self.handlers, Mapping):
            return self.handlers
        return self.handlers(context)

    def routers_for(self, context: ServiceContext) -> Sequence[APIRouter]:
        """The HTTP routers of this service in `context` (none when it has no API)."""
        return () if self.routers is None else self.routers(context)


class PluginDiscoveryError(ValueError):
    """An installed `mlplane.services` entry point does not give a usable ServicePlugin."""


def discover_services(group: str = ENTRY_POINT_GROUP) -> list[ServicePlugin]:
    """Every installed service plugin, sorted by name; [] when none is installed.

    Raises PluginDiscoveryError when an entry point cannot be imported, is not a
    `ServicePlugin`, or two installed plugins share a name.
    """
    plugins: dict[str, ServicePlugin] = {}
    for entry_point in entry_points(group=group):
        plugin = _load(entry_point)
        if plugin.name in plugins:
            raise PluginDiscoveryError(
                f"two installed services are named {plugin.name!r} "
                f"(entry point {entry_point.name} = {entry_point.value})"
            )
        plugins[plugin.name] = plugin
    return [plugins[name] for name in sorted(plugins)]


def find_service(name: str, group: str = ENTRY_POINT_GROUP) -> ServicePlugin:
    """The installed service plugin called `name`.

    Raises PluginDiscoveryError naming the installed services when none is called so.
    """
    plugins = discover_services(group)
    for plugin in plugins:
        if plugin.name == name:
            return plugin
    installed = ", ".join(p.name for p in plugins) or "none"
    raise PluginDiscoveryError(f"no service named {name!r} is installed (installed: {installed})")


def _load(entry_point: EntryPoint) -> ServicePlugin:
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise PluginDiscoveryError(
            f"service entry point {entry_point.name} = {entry_point.value} cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(loaded, ServicePlugin):
        raise PluginDiscoveryError(
            f"service entry point {entry_point.name} = {entry_point.value} is a "
            f"{type(loaded).__name__}, not a ServicePlugin"
        )
    return loaded
