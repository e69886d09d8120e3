"""The MLflow API's hottest reads (a version, a version by alias), kept in the registry's
read cache beside its own answers and dropped with them when the model changes.

What is kept is the answer's bytes exactly as the MLflow route sends them, so a hot
answer (`hot_reads`) and the route's are the same. MLflow's reads go by the same
team and model as mlplane's (MLflow's model names are mlplane's, DNS labels).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_registry.deps import HostedRegistry
from mlplane_registry.mlflow.entities import model_version_json
from mlplane_registry.read_cache import CachedAnswer, EntryKey, Read


def version_key(number: int) -> EntryKey:
    return ("mlflow-version", number)


def alias_key(alias: str) -> EntryKey:
    return ("mlflow-alias", alias)


def version_reader(
    registry: HostedRegistry, readers: UnitOfWorkFactory, team: str, model: str, number: int
) -> Read:
    """`model-versions/get`'s answer (raises `ModelVersionNotFound`)."""

    async def read() -> CachedAnswer:
        found = await registry.reading(readers, lambda use: use.get_version(team, model, number))
        return _answer(model_version_json(found))

    return read


def alias_reader(
    registry: HostedRegistry, readers: UnitOfWorkFactory, team: str, model: str, alias: str
) -> Read:
    """`registered-models/alias`'s answer (raises `AliasNotFound`, `ModelNotFound`)."""

    async def read() -> CachedAnswer:
        _, version = await registry.reading(readers, lambda use: use.get_alias(team, model, alias))
        return _answer(model_version_json(version))

    return read


def _answer(version: dict[str, object]) -> CachedAnswer:
    # Rendered as the route's dict would be: the same bytes either way.
    return CachedAnswer(bytes(JSONResponse({"model_version": version}).body), None)
