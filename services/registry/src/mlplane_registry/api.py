"""The registry's HTTP API (mounted under `/registry`): parse, call one use case, answer.

The team comes from the `X-Mlplane-Team` header (the gateway sets it); a team
sees only its own models, another team's model is simply not found. Versions and
aliases carry an `ETag`; writes with `If-Match` are refused with 412 when someone
else changed the resource first. Reads need `models:read`, changes `models:write`;
a change commits when its route returns (`WriteUow`), before the answer is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.deps import CurrentContext, Principal, ReadUow, Team, WriteUow, scoped
from mlplane_runtime.errors import InvalidInput

from mlplane_registry.deps import Registry
from mlplane_registry.domain import VersionStage
from mlplane_registry.hot_reads import alias_reader, search_entry, search_reader, version_reader
from mlplane_registry.hot_writes import register_version
from mlplane_registry.read_cache import CachedAnswer
from mlplane_registry.schemas import (
    AliasedVersionOut,
    AliasOut,
    AliasSet,
    ModelCreate,
    ModelList,
    ModelOut,
    ModelUpdate,
    VersionCreate,
    VersionOut,
    VersionPageOut,
    VersionUpdate,
)
from mlplane_registry.store import VersionFilter

IfMatch = Annotated[str | None, Header(alias="If-Match")]
ModelName = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
AliasName = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _etag(value: str) -> str:
    return f'"{value}"'


router = APIRouter(
    tags=["registry"], dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))]
)

# -- models -----------------------------------------------------------------------


@router.post("/models", status_code=201)
async def create_model(
    body: ModelCreate, team: Team, registry: Registry, uow: WriteUow
) -> ModelOut:
    model = await registry.service(uow).create_model(
        team, body.name, body.description, dict(body.tags)
    )
    return ModelOut.of(model)


@router.get("/models")
async def list_models(
    team: Team,
    registry: Registry,
    uow: ReadUow,
    name_prefix: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ModelList:
    models = await registry.service(uow).list_models(team, name_prefix, limit)
    return ModelList(models=[ModelOut.of(m) for m in models])


@router.get("/models/{name}")
async def get_model(
    name: ModelName, team: Team, registry: Registry, uow: ReadUow, response: Response
) -> ModelOut:
    model = await registry.service(uow).get_model(team, name)
    response.headers["ETag"] = _etag(model.etag)
    return ModelOut.of(model)


@router.patch("/models/{name}")
async def update_model(
    name: ModelName,
    body: ModelUpdate,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    response: Response,
    if_match: IfMatch = None,
) -> ModelOut:
    model = await registry.service(uow).update_model(
        team,
        name,
        description=body.description,
        tags=None if body.tags is None else dict(body.tags),
        if_match=if_match,
    )
    response.headers["ETag"] = _etag(model.etag)
    return ModelOut.of(model)


@router.delete("/models/{name}", status_code=204)
async def delete_model(
    name: ModelName,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    who: Principal,
    if_match: IfMatch = None,
) -> Response:
    await registry.service(uow).delete_model(team, name, who, if_match)
    return Response(status_code=204)


# -- versions ---------------------------------------------------------------------


@router.post("/models/{name}/versions", status_code=201)
async def create_version(
    name: ModelName,
    body: VersionCreate,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    who: Principal,
    response: Response,
) -> VersionOut:
    version = await register_version(registry.service(uow), team, name, body, who)
    response.headers["ETag"] = _etag(version.etag)
    response.headers["Location"] = f"models/{name}/versions/{version.version}"
    return VersionOut.of(version)


@router.get("/models/{name}/versions/{version}", response_model=VersionOut)
async def get_version(
    name: ModelName, version: VersionNumber, team: Team, registry: Registry, context: CurrentContext
) -> Response:
    read = version_reader(registry, context.uow_factory, team, name, version)
    return _cached(await registry.cache.answer(team, name, ("version", version), read))


@router.patch("/models/{name}/versions/{version}")
async def update_version(
    name: ModelName,
    version: VersionNumber,
    body: VersionUpdate,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    response: Response,
    if_match: IfMatch = None,
) -> VersionOut:
    updated = await registry.service(uow).update_version(
        team,
        name,
        version,
        tags=None if body.tags is None else dict(body.tags),
        status_message=body.status_message,
        signature=body.signature,
        if_match=if_match,
    )
    response.headers["ETag"] = _etag(updated.etag)
    return VersionOut.of(updated)


@router.delete("/models/{name}/versions/{version}", status_code=204)
async def delete_version(
    name: ModelName,
    version: VersionNumber,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    who: Principal,
    if_match: IfMatch = None,
) -> Response:
    await registry.service(uow).delete_version(team, name, version, who, if_match)
    return Response(status_code=204)


@router.get("/versions", response_model=VersionPageOut)
async def search_versions(
    request: Request,
    team: Team,
    registry: Registry,
    context: CurrentContext,
    model: Annotated[str | None, Query(max_length=63, description="exact model name")] = None,
    name_prefix: Annotated[str | None, Query(max_length=63)] = None,
    tag: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
    alias: Annotated[str | None, Query(max_length=63)] = None,
    stage: VersionStage | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    tags: list[tuple[str, str]] = []
    for index, item in enumerate(tag or ()):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(
                f"tag filter {item!r} is not key=value",
                errors=[{"field": f"query.tag[{index}]", "message": "expected key=value"}],
            )
        tags.append((key, value))
    size = min(limit or registry.settings.default_page_size, registry.settings.max_page_size)
    where = VersionFilter(
        model=model,
        name_prefix=name_prefix,
        tags=tuple(tags),
        alias=alias,
        stage=None if stage is None else stage.value,
        created_after=created_after,
        created_before=created_before,
    )

    read = search_reader(registry, context.uow_factory, team, where, cursor, size)
    # Searches within one model are kept with the model's other answers (`hot_reads`).
    entry = search_entry(request.scope["query_string"].decode("latin-1"))
    if entry is None or entry[0] != model:
        return _cached(await read())
    return _cached(await registry.cache.answer(team, model, entry[1], read))


# -- aliases ----------------------------------------------------------------------


@router.put("/models/{name}/aliases/{alias}")
async def set_alias(
    name: ModelName,
    alias: AliasName,
    body: AliasSet,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    who: Principal,
    response: Response,
    if_match: IfMatch = None,
) -> AliasOut:
    written = await registry.service(uow).set_alias(team, name, alias, body.version, who, if_match)
    response.headers["ETag"] = _etag(written.etag)
    return AliasOut.of(written)


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
async def delete_alias(
    name: ModelName,
    alias: AliasName,
    team: Team,
    registry: Registry,
    uow: WriteUow,
    who: Principal,
    if_match: IfMatch = None,
) -> Response:
    await registry.service(uow).delete_alias(team, name, alias, who, if_match)
    return Response(status_code=204)


@router.get("/models/{name}/aliases/{alias}", response_model=AliasedVersionOut)
async def get_by_alias(
    name: ModelName, alias: AliasName, team: Team, registry: Registry, context: CurrentContext
) -> Response:
    read = alias_reader(registry, context.uow_factory, team, name, alias)
    return _cached(await registry.cache.answer(team, name, ("alias", alias), read))


def _cached(answer: CachedAnswer) -> Response:
    """A hot read's answer as sent: its JSON as is, no model built or checked again."""
    headers = None if answer.etag is None else {"ETag": _etag(answer.etag)}
    return Response(answer.body, media_type="application/json", headers=headers)
