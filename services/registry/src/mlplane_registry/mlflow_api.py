"""The MLflow-compatible model-registry API: what `mlflow.MlflowClient` calls for the registry.

Mounted under `/registry/api/2.0/mlflow/...` (and `/registry/ajax-api/2.0/mlflow/...`),
so an MLflow client pointed at `http://<host>/registry` (`MLFLOW_TRACKING_URI` or
`MLFLOW_REGISTRY_URI`) works on the same models and versions as mlplane's own API.
Each route parses MLflow's request, calls one `RegistryService` use case and answers
MLflow's JSON; errors are MLflow's `{"error_code", "message"}` with its HTTP status
(`mlflow_mapping` holds how the two registries map onto each other).

MLflow has no teams: the team is the `X-Mlplane-Team` header when present (the
gateway sets it), else `MLPLANE_REGISTRY_MLFLOW_DEFAULT_TEAM` (default `default`).
The principal recorded as a version's `user_id` is `X-Mlplane-Principal`, else
`user:anonymous`.

Not offered: renaming a model (mlplane names are stable identifiers that events,
images and deployments refer to) and stage transitions (deprecated by MLflow; use
aliases): both answer NOT_IMPLEMENTED. Any other path under the prefix answers
ENDPOINT_NOT_FOUND, as MLflow's server does.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases
# defined inside `routers` (they close over its unit-of-work factory).
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DnsLabel
from mlplane_runtime.caller import CallerDependencies, service_caller
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.media_types import is_json_media_type
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_registry import mlflow_mapping as m
from mlplane_registry import mlflow_schemas as s
from mlplane_registry.domain import AliasNotFound, ModelVersion
from mlplane_registry.service import RegistryService
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables, VersionFilter

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MLFLOW_READ_ONLY_POSTS = ("/registered-models/get-latest-versions",)
"""MLflow's client sends these reads as POST."""

R = TypeVar("R", bound=s.MlflowRequest)


class MlflowApiSettings(BaseSettings):
    """Settings of the MLflow-compatible API (prefix `MLPLANE_REGISTRY_MLFLOW_`)."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_MLFLOW_", extra="ignore")

    default_team: DnsLabel = "default"
    """The team of MLflow requests that carry no `X-Mlplane-Team` header."""


class MlflowRoute(APIRoute):
    """A route whose errors are MLflow's JSON (the client parses nothing else)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handle(request)
            except m.MlflowError as exc:
                error = exc
            except MlplaneError as exc:
                error = m.error_of(exc)
            except (RequestValidationError, ValidationError) as exc:
                error = m.invalid(m.validation_message(exc.errors()))
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
                raise m.invalid("The request body must be JSON (Content-Type: application/json).")
            try:
                body = json.loads(raw)
            except ValueError:
                raise m.invalid("The request body is not JSON.") from None
            if not isinstance(body, dict):
                raise m.invalid("The request body is not a JSON object.")
            data.update(body)
    return kind.model_validate(data)


def routers(
    tables: RegistryTables,
    uow_factory: UnitOfWorkFactory,
    settings: RegistrySettings,
    mlflow_settings: MlflowApiSettings | None = None,
    caller: CallerDependencies | None = None,
) -> Sequence[APIRouter]:
    """The MLflow-compatible routes on `tables`, opening units of work from `uow_factory`;
    `caller` verifies the gateway's identity (default: the key the environment sets).
    Reads (GETs and MLflow's read-only POSTs) need `models:read`, changes `models:write`."""
    config = mlflow_settings or MlflowApiSettings()
    caller = caller or service_caller("registry")
    scoped = caller.scoped(
        read=MODELS_READ, write=MODELS_WRITE, read_only_posts=MLFLOW_READ_ONLY_POSTS
    )
    router = APIRouter(tags=["mlflow"], route_class=MlflowRoute, dependencies=[Depends(scoped)])

    async def unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory() as uow:
            yield uow

    Uow = Annotated[UnitOfWork, Depends(unit_of_work)]

    async def team_of(team: Annotated[str | None, Depends(caller.optional_team)]) -> str:
        return team or config.default_team

    Team = Annotated[str, Depends(team_of)]
    Who = Annotated[str, Depends(caller.principal)]

    async def all_versions(service: RegistryService, team: str, name: str) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        cursor: str | None = None
        while True:
            page = await service.search_versions(
                team, VersionFilter(model=name), cursor, settings.max_page_size
            )
            found.extend(page.versions)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    # -- registered models ------------------------------------------------------------

    @router.post("/registered-models/create")
    async def create_registered_model(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.CreateRegisteredModel)
        tags = dict(m.check_tag(t.key, t.value) for t in req.tags)
        model = await RegistryService(uow, tables).create_model(
            team, m.check_model_name(req.name), req.description or "", tags
        )
        await uow.commit()
        return {"registered_model": m.registered_model_json(model, [])}

    @router.get("/registered-models/get")
    async def get_registered_model(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.ModelName)
        service = RegistryService(uow, tables)
        model = await service.get_model(team, req.name)
        versions = await all_versions(service, team, req.name)
        return {"registered_model": m.registered_model_json(model, versions)}

    @router.get("/registered-models/search")
    async def search_registered_models(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.Search)
        query = m.parse_filter(req.filter, versions=False)
        m.check_order_by(req.order_by)
        size = min(req.max_results or settings.max_page_size, settings.max_page_size)
        offset = m.decode_offset(req.page_token)
        if query.prompts_only:
            return {"registered_models": []}
        service = RegistryService(uow, tables)
        prefix = query.name if query.name is not None else query.name_prefix
        models = await service.list_models(team, prefix, offset + size + 1)
        if query.name is not None:
            models = [x for x in models if x.name == query.name]
        page = models[offset : offset + size]
        answer: dict[str, Any] = {"registered_models": [m.registered_model_json(x) for x in page]}
        if len(models) > offset + size:
            answer["next_page_token"] = m.encode_offset(offset + size)
        return answer

    @router.patch("/registered-models/update")
    async def update_registered_model(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.UpdateRegisteredModel)
        model = await RegistryService(uow, tables).update_model(
            team, req.name, description=req.description or "", tags=None
        )
        await uow.commit()
        return {"registered_model": m.registered_model_json(model)}

    @router.post("/registered-models/rename")
    async def rename_registered_model(request: Request) -> dict[str, Any]:
        await read(request, s.RenameRegisteredModel)
        raise m.MlflowError(
            m.NOT_IMPLEMENTED,
            "mlplane does not rename models: a model's name identifies it in events, images "
            "and deployments. Register the versions under a new model instead.",
        )

    @router.delete("/registered-models/delete")
    async def delete_registered_model(
        request: Request, team: Team, uow: Uow, who: Who
    ) -> dict[str, Any]:
        req = await read(request, s.ModelName)
        await RegistryService(uow, tables).delete_model(team, req.name, who)
        await uow.commit()
        return {}

    @router.post("/registered-models/get-latest-versions")
    @router.get("/registered-models/get-latest-versions")
    async def get_latest_versions(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.GetLatestVersions)
        service = RegistryService(uow, tables)
        await service.get_model(team, req.name)
        latest = m.latest_version(await all_versions(service, team, req.name))
        chosen = m.latest_for_stages(req.stages, latest)
        return {"model_versions": [m.model_version_json(v) for v in chosen]}

    @router.post("/registered-models/set-tag")
    async def set_registered_model_tag(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.SetRegisteredModelTag)
        key, value = m.check_tag(req.key, req.value)
        service = RegistryService(uow, tables)
        model = await service.get_model(team, req.name, for_update=True)
        await service.update_model(
            team, req.name, description=None, tags=m.with_tag(model.tags, key, value)
        )
        await uow.commit()
        return {}

    @router.delete("/registered-models/delete-tag")
    async def delete_registered_model_tag(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.DeleteRegisteredModelTag)
        service = RegistryService(uow, tables)
        model = await service.get_model(team, req.name, for_update=True)
        await service.update_model(
            team, req.name, description=None, tags=m.without_tag(model.tags, req.key)
        )
        await uow.commit()
        return {}

    # -- aliases ----------------------------------------------------------------------

    @router.post("/registered-models/alias")
    async def set_alias(request: Request, team: Team, uow: Uow, who: Who) -> dict[str, Any]:
        req = await read(request, s.SetAlias)
        await RegistryService(uow, tables).set_alias(
            team, req.name, m.check_alias(req.alias), m.parse_version(req.version), who
        )
        await uow.commit()
        return {}

    @router.delete("/registered-models/alias")
    async def delete_alias(request: Request, team: Team, uow: Uow, who: Who) -> dict[str, Any]:
        req = await read(request, s.AliasRef)
        try:
            await RegistryService(uow, tables).delete_alias(team, req.name, req.alias, who)
        except AliasNotFound:
            return {}  # as MLflow: deleting an alias that is not there is no error
        await uow.commit()
        return {}

    @router.get("/registered-models/alias")
    async def get_by_alias(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.AliasRef)
        _, version = await RegistryService(uow, tables).get_alias(team, req.name, req.alias)
        return {"model_version": m.model_version_json(version)}

    # -- model versions ---------------------------------------------------------------

    @router.post("/model-versions/create")
    async def create_model_version(
        request: Request, team: Team, uow: Uow, who: Who
    ) -> dict[str, Any]:
        req = await read(request, s.CreateModelVersion)
        new = m.new_version(
            source=req.source,
            run_id=req.run_id,
            run_link=req.run_link,
            description=req.description,
            tags=[(t.key, t.value) for t in req.tags],
        )
        version = await RegistryService(uow, tables, settings.artifact_locations).register_version(
            team,
            req.name,
            framework=new.framework,
            artifact=new.artifact,
            lineage=new.lineage,
            registered_by=who,
            tags=new.tags,
        )
        await uow.commit()
        return {"model_version": m.model_version_json(version)}

    @router.get("/model-versions/get")
    async def get_model_version(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.VersionRef)
        version = await RegistryService(uow, tables).get_version(
            team, req.name, m.parse_version(req.version)
        )
        return {"model_version": m.model_version_json(version)}

    @router.get("/model-versions/search")
    async def search_model_versions(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.Search)
        query = m.parse_filter(req.filter, versions=True)
        m.check_order_by(req.order_by)
        size = min(req.max_results or settings.max_page_size, settings.max_page_size)
        if query.prompts_only:
            return {"model_versions": []}
        page = await RegistryService(uow, tables).search_versions(
            team,
            VersionFilter(model=query.name, name_prefix=query.name_prefix, tags=query.tags),
            req.page_token or None,
            size,
        )
        answer: dict[str, Any] = {
            "model_versions": [m.model_version_json(v) for v in page.versions]
        }
        if page.next_cursor is not None:
            answer["next_page_token"] = page.next_cursor
        return answer

    @router.patch("/model-versions/update")
    async def update_model_version(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.UpdateModelVersion)
        number = m.parse_version(req.version)
        service = RegistryService(uow, tables)
        current = await service.get_version(team, req.name, number, for_update=True)
        tags = m.with_description(current.tags, req.description)
        updated = await service.update_version(team, req.name, number, tags=tags)
        await uow.commit()
        return {"model_version": m.model_version_json(updated)}

    @router.delete("/model-versions/delete")
    async def delete_model_version(
        request: Request, team: Team, uow: Uow, who: Who
    ) -> dict[str, Any]:
        req = await read(request, s.VersionRef)
        await RegistryService(uow, tables).delete_version(
            team, req.name, m.parse_version(req.version), who
        )
        await uow.commit()
        return {}

    @router.get("/model-versions/get-download-uri")
    async def get_download_uri(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.VersionRef)
        version = await RegistryService(uow, tables).get_version(
            team, req.name, m.parse_version(req.version)
        )
        return {"artifact_uri": version.artifact.uri}

    @router.post("/model-versions/set-tag")
    async def set_model_version_tag(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.SetModelVersionTag)
        key, value = m.check_tag(req.key, req.value)
        await _retag(uow, team, req.name, req.version, lambda t: m.with_tag(t, key, value))
        return {}

    @router.delete("/model-versions/delete-tag")
    async def delete_model_version_tag(request: Request, team: Team, uow: Uow) -> dict[str, Any]:
        req = await read(request, s.DeleteModelVersionTag)
        key = m.check_tag_key_deletable(req.key)
        await _retag(uow, team, req.name, req.version, lambda t: m.without_tag(t, key))
        return {}

    async def _retag(
        uow: UnitOfWork,
        team: str,
        name: str,
        version: str,
        change: Callable[[dict[str, str]], dict[str, str]],
    ) -> None:
        number = m.parse_version(version)
        service = RegistryService(uow, tables)
        # Locked: a concurrent tag change waits, then applies to what this one wrote.
        current = await service.get_version(team, name, number, for_update=True)
        await service.update_version(team, name, number, tags=change(dict(current.tags)))
        await uow.commit()

    @router.post("/model-versions/transition-stage")
    async def transition_stage(request: Request) -> dict[str, Any]:
        await read(request, s.VersionRef)
        raise m.MlflowError(
            m.NOT_IMPLEMENTED,
            "mlplane has no model version stages (MLflow deprecated them): every version is "
            "in stage None. Use aliases (e.g. 'champion') instead.",
        )

    @router.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def not_found(path: str) -> dict[str, Any]:
        raise m.MlflowError(
            m.ENDPOINT_NOT_FOUND,
            f"mlplane's MLflow-compatible API has no endpoint '{path}': it serves the "
            "model registry only (no experiments, runs or artifacts).",
        )

    outer = APIRouter()
    for prefix in PREFIXES:
        outer.include_router(router, prefix=prefix)
    return [outer]
