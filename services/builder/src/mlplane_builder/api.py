"""The builder's HTTP API (mounted under `/builder`): list and read builds, ask a rebuild.

The team comes from the `X-Mlplane-Team` header (the gateway sets it); another team's
build is simply not found. Lists are newest first, paged by an opaque cursor, so a
page never repeats or skips a build while new ones arrive.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# defined inside `routers` (they close over its unit-of-work factory).
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.caller import CallerDependencies, service_caller
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_builder.domain import BuildStatus
from mlplane_builder.schemas import BuildOut, BuildPage
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables, BuildFilter

MAX_PAGE_SIZE = 500

BuildId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _cursor_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.startswith("b") or not cursor[1:].isdigit():
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned", field="cursor")
    return int(cursor[1:])


def routers(
    tables: BuilderTables,
    uow_factory: UnitOfWorkFactory,
    wake: Callable[[], None] = lambda: None,
    caller: CallerDependencies | None = None,
) -> Sequence[APIRouter]:
    """The builder's routes on `tables`; `wake` tells idle workers a build is pending;
    `caller` verifies the gateway's identity (default: the key the environment sets)."""
    caller = caller or service_caller("builder")
    router = APIRouter(
        tags=["builder"],
        dependencies=[Depends(caller.scoped(read=MODELS_READ, write=MODELS_WRITE))],
    )
    Team = Annotated[str, Depends(caller.team)]

    async def unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory() as uow:
            yield uow

    Uow = Annotated[UnitOfWork, Depends(unit_of_work)]

    @router.get("/builds")
    async def list_builds(
        team: Team,
        uow: Uow,
        model: Annotated[
            str | None, Query(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
        ] = None,
        status: BuildStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[str | None, Query(max_length=32)] = None,
    ) -> BuildPage:
        """Builds of the team, newest first; filter by model and status."""
        builds = await BuilderService(uow, tables).list_builds(
            BuildFilter(team=team, model=model, status=status),
            limit=limit + 1,
            before_id=_cursor_id(cursor),
        )
        page = builds[:limit]
        more = len(builds) > limit
        return BuildPage(
            builds=[BuildOut.of(build) for build in page],
            next_cursor=f"b{page[-1].id}" if more and page else None,
        )

    @router.get("/builds/{build_id}")
    async def get_build(build_id: BuildId, team: Team, uow: Uow) -> BuildOut:
        return BuildOut.of(await BuilderService(uow, tables).get_build(team, build_id))

    @router.post("/builds/{build_id}/rebuild", status_code=202)
    async def rebuild(build_id: BuildId, team: Team, uow: Uow) -> BuildOut:
        """Build a finished build again (a failed one once its cause is fixed). An
        identical image already in the registry is reused: nothing is uploaded."""
        build = await BuilderService(uow, tables).rebuild(team, build_id)
        uow.after_commit(wake)
        await uow.commit()
        return BuildOut.of(build)

    return [router]
