"""Request plumbing for a service's module-level routes: typed dependency aliases, once.

A service declares its routers at module level and its routes take what they need
by annotation::

    router = APIRouter(dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))])

    @router.post("/models", status_code=201)
    async def create_model(body: ModelCreate, team: Team, uow: WriteUow) -> ModelOut:
        return ModelOut.of(await RegistryService(uow, ...).create_model(team, ...))

What a route needs of its hosting (the unit-of-work factory, the identity key, the
service's settings and adapters) is not known at import: the host binds each request
of a service's routers to that service's `ServiceContext` and `ServiceParts`
(`bind_service`, a router-level dependency added where the host mounts them), and
the dependencies here read it from the request. `mlplane up` hosts several services
in one app: each service's routes are bound to their own hosting.

- `WriteUow`: a unit of work that commits when the route returns, BEFORE the
  response is sent (a failed commit is the request's error, never a 2xx after the
  fact), and rolls back when the route raises. No route calls `commit()`.
- `ReadUow`: a read-only unit of work (`UnitOfWorkFactory.reading`): statements
  autocommit, nothing may be emitted.
- `CurrentCaller`, `Team`, `OptionalTeam`, `Principal`: the caller the gateway's
  signed identity names; `scoped(...)` and `require(scope)` check its scopes.
- `CurrentContext`: the service's `ServiceContext`; `resources(Type)` a dependency
  answering the `ServiceParts.resources` its `build` made (checked to be a `Type`).
"""

# No `from __future__ import annotations`: FastAPI resolves these annotations at import.
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, params

from mlplane_runtime.caller import (
    Caller,
    IdentityHeader,
    IdentityVerifier,
    TeamHeader,
    dependencies_of,
)
from mlplane_runtime.service import ServiceContext, ServiceParts
from mlplane_runtime.uow import UnitOfWork

R = TypeVar("R")

_SCOPE_KEY = "mlplane.service"


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    """The hosting a request of a service's routes belongs to."""

    context: ServiceContext
    parts: ServiceParts


def service_binder(context: ServiceContext, parts: ServiceParts) -> params.Depends:
    """The dependency that binds a request to `context` and `parts`: give it first in
    `include_router(router, dependencies=[...])` of a service's routers, so the
    routers' own dependencies (scope checks included) already see the binding."""
    binding = ServiceBinding(context, parts)

    async def bind(request: Request) -> None:
        request.scope[_SCOPE_KEY] = binding

    binder: params.Depends = Depends(bind)
    return binder


def bind_service(
    routers: Sequence[APIRouter], context: ServiceContext, parts: ServiceParts
) -> APIRouter:
    """`routers` in one router whose every request is bound to `context` and `parts`."""
    binder = service_binder(context, parts)
    bound = APIRouter()
    for router in routers:
        bound.include_router(router, dependencies=[binder])
    return bound


def service_binding(request: Request) -> ServiceBinding:
    """The hosting `request` is bound to. RuntimeError for a route no host mounted
    with `bind_service` (a wiring bug, answered 500)."""
    binding = request.scope.get(_SCOPE_KEY)
    if not isinstance(binding, ServiceBinding):
        raise RuntimeError(
            f"{request.method} {request.url.path} is not bound to a hosted service: "
            "mount service routers with mlplane_runtime.deps.bind_service"
        )
    return binding


async def current_context(request: Request) -> ServiceContext:
    return service_binding(request).context


CurrentContext = Annotated[ServiceContext, Depends(current_context)]


def resources(kind: type[R]) -> Callable[[Request], Awaitable[R]]:
    """A dependency answering the `ServiceParts.resources` of the request's service,
    a `kind` (RuntimeError when its `build` made something else: a wiring bug).

    Define the alias once per service: `Registry = Annotated[HostedRegistry,
    Depends(resources(HostedRegistry))]`.
    """

    async def resolve(request: Request) -> R:
        found = service_binding(request).parts.resources
        if not isinstance(found, kind):
            raise RuntimeError(
                f"service {service_binding(request).context.name} has no {kind.__name__} "
                f"resources (its build gave {type(found).__name__})"
            )
        return found

    resolve.__name__ = f"{kind.__name__.lower()}_resources"
    return resolve


# -- units of work ----------------------------------------------------------------------


async def writing_unit_of_work(context: CurrentContext) -> AsyncIterator[UnitOfWork]:
    """A unit of work committed when the route returns, rolled back when it raises."""
    async with context.uow_factory() as uow:
        yield uow
        # Reached only when the route returned. Function scope: this runs before the
        # response is sent, so a failing commit is the request's error response.
        await uow.commit()


async def reading_unit_of_work(context: CurrentContext) -> AsyncIterator[UnitOfWork]:
    """A read-only unit of work: each statement autocommits, nothing may be emitted."""
    async with context.uow_factory.reading() as uow:
        yield uow


WriteUow = Annotated[UnitOfWork, Depends(writing_unit_of_work, scope="function")]
ReadUow = Annotated[UnitOfWork, Depends(reading_unit_of_work, scope="function")]


# -- the caller -------------------------------------------------------------------------


def _verifier(request: Request) -> IdentityVerifier:
    binding = service_binding(request)
    caller = binding.context.require_caller()
    if caller.verifier is None:
        raise RuntimeError(f"service {binding.context.name} has no identity verifier")
    return caller.verifier


async def verified_caller(
    request: Request, identity: IdentityHeader = None, team_header: TeamHeader = None
) -> Caller:
    """The caller the gateway's signed identity names, verified with the key of the
    request's service. Raises InvalidForwardedIdentity (401) without a valid token."""
    # Parameter names unlike any path parameter's (`/teams/{team}/...`): FastAPI matches
    # path parameters by name, header aliases notwithstanding.
    return _verifier(request).caller(identity, team_header)


callers = dependencies_of(verified_caller)
"""`CallerDependencies` of every service the gateway fronts, for module-level routes."""

scoped = callers.scoped
"""`scoped(read=..., write=..., read_only_posts=...)`: a router-wide scope check."""
require = callers.require
"""`require(scope)`: a dependency answering the caller once it holds `scope` (403 otherwise)."""

CurrentCaller = Annotated[Caller, Depends(verified_caller)]
Team = Annotated[str, Depends(callers.team)]
"""The team the caller acts for (422 naming `X-Mlplane-Team` when it acts for none)."""
OptionalTeam = Annotated[str | None, Depends(callers.optional_team)]
"""The team the caller acts for, None for the operator naming none."""
Principal = Annotated[str, Depends(callers.principal)]
"""Who the caller is, as audit fields record it."""
