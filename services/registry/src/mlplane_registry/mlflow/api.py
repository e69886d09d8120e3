"""The MLflow-compatible model-registry API: what `mlflow.MlflowClient` calls for the registry.

Mounted under `/registry/api/2.0/mlflow/...` (and `/registry/ajax-api/2.0/mlflow/...`),
so an MLflow client pointed at `http://<host>/registry` (`MLFLOW_TRACKING_URI` or
`MLFLOW_REGISTRY_URI`) works on the same models and versions as mlplane's own API.
Each route parses MLflow's request, calls one `MlflowRegistryService` use case and
answers MLflow's JSON (`entities`); errors are MLflow's `{"error_code", "message"}`
with its HTTP status (`errors`). A change commits when its route returns, before the
answer is sent (`WriteUow`).

MLflow has no teams: the team is the `X-Mlplane-Team` header when present (the
gateway sets it), else `MLPLANE_REGISTRY_MLFLOW_DEFAULT_TEAM` (default `default`).
The principal recorded as a version's `user_id` is the caller's. Reads (GETs and
MLflow's read-only POSTs) need `models:read`, changes `models:write`.

Renaming a model moves its versions and aliases with it; images already built and
deployments keep the name they were made under (events name the model as it was).
Not offered: stage transitions (deprecated by MLflow; use aliases): NOT_IMPLEMENTED.
Any other path under the prefix answers ENDPOINT_NOT_FOUND, as MLflow's server does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_runtime.deps import (
    CurrentContext,
    OptionalTeam,
    Principal,
    ReadUow,
    WriteUow,
    scoped,
)
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.media_types import is_json_media_type
from mlplane_runtime.uow import UnitOfWork
from pydantic import ValidationError

from mlplane_registry.deps import HostedRegistry, Registry
from mlplane_registry.domain.registration import PENDING
from mlplane_registry.mlflow import cached_reads, errors, names
from mlplane_registry.mlflow import schemas as s
from mlplane_registry.mlflow.entities import model_version_json, registered_model_json
from mlplane_registry.mlflow.service import MlflowRegistryService

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MLFLOW_READ_ONLY_POSTS = ("/registered-models/get-latest-versions",)
"""MLflow's client sends these reads as POST."""

R = TypeVar("R", bound=s.MlflowRequest)


class MlflowRoute(APIRoute):
    """A route whose errors are MLflow's JSON (the client parses nothing else)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handle(request)
            except errors.MlflowError as exc:
                error = exc
            except MlplaneError as exc:
                error = errors.error_of(exc)
            except (RequestValidationError, ValidationError) as exc:
                error = errors.invalid(errors.validation_message(exc.errors()))
            return JSONResponse(error.body(), status_code=error.status)

        return run


async def read(request: Request, kind: type[R]) -> R:
    """MLflow's request: the query string of a GET, else the JSON body (and query)."""
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        data[key] = values if key in kind.LIST_FIELDS else values[-1]
    if request.method != "GET":
        raw = await request.body()
        if raw.strip():
            if not is_json_media_type(request.headers.get("content-type")):
                # A browser's form or text/plain post must never change anything.
                raise errors.invalid(
                    "The request body must be JSON (Content-Type: application/json)."
                )
            try:
                body = json.loads(raw)
            except ValueError:
                raise errors.invalid("The request body is not JSON.") from None
            if not isinstance(body, dict):
                raise errors.invalid("The request body is not a JSON object.")
            data.update(body)
    return kind.model_validate(data)


async def mlflow_team(team: OptionalTeam, registry: Registry) -> str:
    """The caller's team, else the MLflow API's default team."""
    return team or registry.mlflow.default_team


Team = Annotated[str, Depends(mlflow_team)]


def _service(registry: HostedRegistry, uow: UnitOfWork) -> MlflowRegistryService:
    return MlflowRegistryService(
        registry.service(uow),
        registry.settings.max_page_size,
        tracking=registry.mlflow.tracking_uri is not None,
    )


async def writing(registry: Registry, uow: WriteUow) -> MlflowRegistryService:
    return _service(registry, uow)


async def reading(registry: Registry, uow: ReadUow) -> MlflowRegistryService:
    return _service(registry, uow)


Changes = Annotated[MlflowRegistryService, Depends(writing)]
"""The use cases on a unit of work committed when the route returns."""
Reads = Annotated[MlflowRegistryService, Depends(reading)]
"""The use cases on a read-only unit of work."""

routes = APIRouter(
    tags=["mlflow"],
    route_class=MlflowRoute,
    dependencies=[
        Depends(
            scoped(read=MODELS_READ, write=MODELS_WRITE, read_only_posts=MLFLOW_READ_ONLY_POSTS)
        )
    ],
)

# -- registered models ------------------------------------------------------------------


@routes.post("/registered-models/create")
async def create_registered_model(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.CreateRegisteredModel)
    model = await mlflow.create_model(
        team, req.name, req.description, [(t.key, t.value) for t in req.tags]
    )
    return {"registered_model": registered_model_json(model, [])}


@routes.get("/registered-models/get")
async def get_registered_model(request: Request, team: Team, mlflow: Reads) -> dict[str, Any]:
    req = await read(request, s.ModelName)
    model, versions = await mlflow.get_model(team, req.name)
    return {"registered_model": registered_model_json(model, versions)}


@routes.get("/registered-models/search")
async def search_registered_models(request: Request, team: Team, mlflow: Reads) -> dict[str, Any]:
    req = await read(request, s.Search)
    models, following = await mlflow.search_models(
        team, req.filter, req.order_by, req.max_results, req.page_token
    )
    answer: dict[str, Any] = {"registered_models": [registered_model_json(m) for m in models]}
    if following is not None:
        answer["next_page_token"] = following
    return answer


@routes.patch("/registered-models/update")
async def update_registered_model(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.UpdateRegisteredModel)
    model = await mlflow.update_description(team, req.name, req.description)
    return {"registered_model": registered_model_json(model)}


@routes.post("/registered-models/rename")
async def rename_registered_model(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.RenameRegisteredModel)
    model = await mlflow.rename_model(team, req.name, req.new_name)
    return {"registered_model": registered_model_json(model)}


@routes.delete("/registered-models/delete")
async def delete_registered_model(
    request: Request, team: Team, mlflow: Changes, who: Principal
) -> dict[str, Any]:
    req = await read(request, s.ModelName)
    await mlflow.delete_model(team, req.name, who)
    return {}


@routes.post("/registered-models/get-latest-versions")
@routes.get("/registered-models/get-latest-versions")
async def get_latest_versions(request: Request, team: Team, mlflow: Reads) -> dict[str, Any]:
    req = await read(request, s.GetLatestVersions)
    chosen = await mlflow.latest_versions(team, req.name, req.stages)
    return {"model_versions": [model_version_json(v) for v in chosen]}


@routes.post("/registered-models/set-tag")
async def set_registered_model_tag(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.SetRegisteredModelTag)
    await mlflow.set_model_tag(team, req.name, req.key, req.value)
    return {}


@routes.delete("/registered-models/delete-tag")
async def delete_registered_model_tag(
    request: Request, team: Team, mlflow: Changes
) -> dict[str, Any]:
    req = await read(request, s.DeleteRegisteredModelTag)
    await mlflow.delete_model_tag(team, req.name, req.key)
    return {}


# -- aliases ----------------------------------------------------------------------------


@routes.post("/registered-models/alias")
async def set_alias(
    request: Request, team: Team, mlflow: Changes, who: Principal
) -> dict[str, Any]:
    req = await read(request, s.SetAlias)
    await mlflow.set_alias(team, req.name, req.alias, req.version, who)
    return {}


@routes.delete("/registered-models/alias")
async def delete_alias(
    request: Request, team: Team, mlflow: Changes, who: Principal
) -> dict[str, Any]:
    req = await read(request, s.AliasRef)
    await mlflow.delete_alias(team, req.name, req.alias, who)
    return {}


@routes.get("/registered-models/alias")
async def get_by_alias(
    request: Request, team: Team, registry: Registry, context: CurrentContext
) -> Response:
    req = await read(request, s.AliasRef)
    reader = cached_reads.alias_reader(registry, context.uow_factory, team, req.name, req.alias)
    key = cached_reads.alias_key(req.alias)
    answer = await registry.cache.answer(team, req.name, key, reader)
    return Response(answer.body, media_type="application/json")


# -- model versions ---------------------------------------------------------------------


@routes.post("/model-versions/create")
async def create_model_version(
    request: Request,
    team: Team,
    mlflow: Changes,
    who: Principal,
    registry: Registry,
    uow: WriteUow,
) -> dict[str, Any]:
    req = await read(request, s.CreateModelVersion)
    version = await mlflow.create_version(
        team,
        req.name,
        who,
        source=req.source,
        run_id=req.run_id,
        run_link=req.run_link,
        description=req.description,
        tag_pairs=[(t.key, t.value) for t in req.tags],
        model_id=req.model_id,
    )
    if version.registration == PENDING:
        uow.after_commit(registry.wake_registration)
    return {"model_version": model_version_json(version)}


@routes.get("/model-versions/get")
async def get_model_version(
    request: Request, team: Team, registry: Registry, context: CurrentContext
) -> Response:
    req = await read(request, s.VersionRef)
    number = names.parse_version(req.version)
    reader = cached_reads.version_reader(registry, context.uow_factory, team, req.name, number)
    key = cached_reads.version_key(number)
    answer = await registry.cache.answer(team, req.name, key, reader)
    return Response(answer.body, media_type="application/json")


@routes.get("/model-versions/search")
async def search_model_versions(request: Request, team: Team, mlflow: Reads) -> dict[str, Any]:
    req = await read(request, s.Search)
    versions, following = await mlflow.search_versions(
        team, req.filter, req.order_by, req.max_results, req.page_token
    )
    answer: dict[str, Any] = {"model_versions": [model_version_json(v) for v in versions]}
    if following is not None:
        answer["next_page_token"] = following
    return answer


@routes.patch("/model-versions/update")
async def update_model_version(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.UpdateModelVersion)
    updated = await mlflow.update_version_description(team, req.name, req.version, req.description)
    return {"model_version": model_version_json(updated)}


@routes.delete("/model-versions/delete")
async def delete_model_version(
    request: Request, team: Team, mlflow: Changes, who: Principal
) -> dict[str, Any]:
    req = await read(request, s.VersionRef)
    await mlflow.delete_version(team, req.name, req.version, who)
    return {}


@routes.get("/model-versions/get-download-uri")
async def get_download_uri(request: Request, team: Team, mlflow: Reads) -> dict[str, Any]:
    req = await read(request, s.VersionRef)
    version = await mlflow.get_version(team, req.name, req.version)
    return {"artifact_uri": version.artifact.uri}


@routes.post("/model-versions/set-tag")
async def set_model_version_tag(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.SetModelVersionTag)
    await mlflow.set_version_tag(team, req.name, req.version, req.key, req.value)
    return {}


@routes.delete("/model-versions/delete-tag")
async def delete_model_version_tag(request: Request, team: Team, mlflow: Changes) -> dict[str, Any]:
    req = await read(request, s.DeleteModelVersionTag)
    await mlflow.delete_version_tag(team, req.name, req.version, req.key)
    return {}


@routes.post("/model-versions/transition-stage")
async def transition_stage(request: Request) -> dict[str, Any]:
    await read(request, s.VersionRef)
    raise errors.MlflowError(
        errors.NOT_IMPLEMENTED,
        "mlplane has no model version stages (MLflow deprecated them): every version is "
        "in stage None. Use aliases (e.g. 'champion') instead.",
    )


@routes.api_route(
    "/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"], include_in_schema=False
)
async def not_found(path: str) -> dict[str, Any]:
    raise errors.MlflowError(
        errors.ENDPOINT_NOT_FOUND,
        f"mlplane's MLflow-compatible API has no endpoint '{path}': it serves the "
        "model registry only (no experiments, runs or artifacts).",
    )


router = APIRouter()
"""The MLflow routes under both of MLflow's prefixes."""
for _prefix in PREFIXES:
    router.include_router(routes, prefix=_prefix)
