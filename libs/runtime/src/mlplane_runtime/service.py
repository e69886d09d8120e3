"""The contract between a service and whatever hosts it: `ServicePlugin`, `ServiceContext`
and `ServiceParts`.

A service describes itself once, in a `ServicePlugin` its package exposes through the
`mlplane.services` entry-point group:

    [project.entry-points."mlplane.services"]
    registry = "mlplane_registry.main:plugin"

The host (the embedded platform of `mlplane up`, or `mlplane serve <name>` running
that one service alone in its container) builds the database, unit-of-work factory
and transport, hands them over in a `ServiceContext`, and calls the plug-in's one
composition root, `build(context) -> ServiceParts`, once per hosting: the service's
handlers, routers, workers, lifespan and the resources its routes reach through
`mlplane_runtime.deps`. The host wires them the same way in both cases.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from mlplane_contracts.topology import queue_name
from sqlalchemy import MetaData

from mlplane_runtime.bus.base import Transport
from mlplane_runtime.caller import CallerDependencies, CallerDependency
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.db import Database, check_schema_name
from mlplane_runtime.hot_path import HotRoute
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
    from, when this process has it (the gateway signs with it). `hosted` names the
    services this process hosts, itself included (`mlplane up`: every installed one,
    `mlplane serve <name>`: that one), so a service can call a neighbour at this
    process's own address only when the neighbour is really served there.
    """

    name: str
    settings: RuntimeSettings
    database: Database
    uow_factory: UnitOfWorkFactory
    transport: Transport
    data_dir: Path
    caller: CallerDependencies | None = None
    identity_secret: bytes | None = None
    hosted: frozenset[str] = frozenset()

    def require_caller(self) -> CallerDependencies:
        """`caller`, or RuntimeError for a service hosted without one (a host's bug)."""
        if self.caller is None:
            raise RuntimeError(f"service {self.name} is hosted without identity verification")
        return self.caller


@dataclass(frozen=True, slots=True)
class ServiceWorker:
    """A long-running coroutine of a service (a sweeper, a scheduler, a job loop).

    The host starts `run()` as a task once the service's lifespan is entered, and
    cancels it (then waits for it) before the lifespan exits; `name` names the task
    and the log lines. `run` should loop until cancelled and handle its own
    failures: one that returns or raises is logged by the host and not restarted.
    """

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class ServiceParts:
    """Everything one hosting of a service consists of, built once by its `build(context)`.

    - `handlers`: event type -> handler; the types are the bindings of its queue.
    - `routers`: its HTTP routers, declared at module level; the host mounts them
      under the plug-in's prefix and binds this hosting to each of their requests,
      so the dependencies of `mlplane_runtime.deps` reach this context and `resources`.
    - `workers`: long-running coroutines the host starts after `lifespan` is entered
      and stops before it exits.
    - `lifespan`: clients that must be opened and closed (an S3 client, a Redis
      pool), entered after the service's consumers and relay start; or None.
    - `caller`: only for a service that authenticates its callers itself (the
      gateway): its caller dependency, used for its dead-letter API. Every other
      service is verified with the gateway's identity (`context.caller`).
    - `resources`: what its routes need besides the context (settings, tables,
      adapters), read in a route through `deps.resources(TheirType)`.
    - `hot_routes`: `GET` routes of `routers` that may be answered before the full
      app when their handler can (a cache hit; see `hot_path`), relative to the prefix.
    """

    handlers: Mapping[str, EventHandler] = field(default_factory=dict)
    routers: Sequence[APIRouter] = ()
    workers: Sequence[ServiceWorker] = ()
    lifespan: AbstractAsyncContextManager[None] | None = None
    caller: CallerDependency | None = None
    resources: object | None = None
    hot_routes: Sequence[HotRoute] = ()


ServiceBuild = Callable[[ServiceContext], ServiceParts]
"""A service's composition root: the parts of one hosting, from the host's context.

Called once per hosting, before anything starts; it builds clients and adapters but
connects to nothing (that is the lifespan's job). Raises InvalidInput for bad settings.
"""


@dataclass(frozen=True, slots=True)
class ServicePlugin:
    """One service as a host sees it.

    - `name`: the service's name; it names its queue (`mlplane.<name>`), its event
      source (`/mlplane/<name>`) and its URL prefix (`/<name>`).
    - `schema`: its PostgreSQL schema; `metadata` holds its tables there, the
      messaging tables (outbox, inbox) included.
    - `migrations`: its Alembic script directory, or None to create `metadata`'s
      tables directly (services without migrations yet, tests).
    - `build`: the service's composition root, `build(context) -> ServiceParts`,
      called by the host once per hosting (see `ServiceParts`); None: a service
      with no handlers, routes or workers.
    - `url_prefix`: where its own routes are mounted; None means `/<name>`, `""`
      the root (the gateway, whose public routes are `/v1/...`). Its dead-letter
      API stays under `/<name>` either way.
    - `authenticates_callers`: False for every service the gateway fronts (its
      callers are verified from the gateway's identity token, and it needs an
      identity key to start); True for the gateway, whose `ServiceParts.caller` is
      its own.
    """

    name: str
    schema: str
    metadata: MetaData
    migrations: Path | None = None
    build: ServiceBuild | None = None
    url_prefix: str | None = None
    authenticates_callers: bool = False

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

    @property
    def verifies_gateway_identity(self) -> bool:
        """Whether its callers are verified from the gateway's identity token (every
        service but the gateway): the host then needs an identity key to host it."""
        return not self.authenticates_callers

    def parts_for(self, context: ServiceContext) -> ServiceParts:
        """What `build` makes of `context` (nothing for a plug-in without one)."""
        return ServiceParts() if self.build is None else self.build(context)


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

    Loads only the entry point named `name` when there is one whose plugin is called so
    (each service's entry point bears its name): importing every installed service
    cost a process serving one of them about 250 MB (scipy, kubernetes, ...).
    Otherwise looks through all of them. Raises PluginDiscoveryError naming the
    installed services when none is called so.
    """
    for entry_point in entry_points(group=group, name=name):
        plugin = _load(entry_point)
        if plugin.name == name:
            return plugin
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
