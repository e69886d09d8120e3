"""The builder's HTTP API (mounted under `/builder`): list and read builds, ask a rebuild.

The team comes from the `X-Mlplane-Team` header (the gateway sets it); another team's
build is simply not found. Lists are newest first, paged by an opaque cursor, so a
page never repeats or skips a build while new ones arrive. Reads need `models:read`,
a rebuild `models:write`; it commits when its route returns (`WriteUow`), before the
answer is sent, and wakes the build worker once committed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.deps import ReadUow, Team, WriteUow, scoped
from mlplane_runtime.errors import InvalidInput

from mlplane_builder.deps import Builder
from mlplane_builder.domain import BuildStatus
from mlplane_builder.schemas import BuildOut, BuildPage
from mlplane_builder.store import BuildFilter

MAX_PAGE_SIZE = 500

BuildId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _cursor_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.startswith("b") or not cursor[1:].isdigit():
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned", field="cursor")
    return int(cursor[1:])


router = APIRouter(
    tags=["builder"], dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))]
)


@router.get("/builds")
async def list_builds(
    team: Team,
    builder: Builder,
    uow: ReadUow,
    model: Annotated[
        str | None, Query(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    ] = None,
    status: BuildStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> BuildPage:
    """Builds of the team, newest first; filter by model and status."""
    builds = await builder.service(uow).list_builds(
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
async def get_build(build_id: BuildId, team: Team, builder: Builder, uow: ReadUow) -> BuildOut:
    return BuildOut.of(await builder.service(uow).get_build(team, build_id))


@router.post("/builds/{build_id}/rebuild", status_code=202)
async def rebuild(build_id: BuildId, team: Team, builder: Builder, uow: WriteUow) -> BuildOut:
    """Build a finished build again (a failed one once its cause is fixed). An
    identical image already in the registry is reused: nothing is uploaded."""
    build = await builder.service(uow).rebuild(team, build_id)
    uow.after_commit(builder.wake)  # the worker looks once the build is pending
    return BuildOut.of(build)
