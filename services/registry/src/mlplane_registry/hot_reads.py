"""The registry's hot reads, answered before the full app: a version, an alias, a
search within one model, and MLflow's get-version and get-by-alias.

Each answers only a caller whose gateway-signed identity verifies, names a team and
holds `models:read`, and only when the read succeeds: from the read cache when it
holds a current answer, else read here as the full route reads it (the same
functions below, which the routes in `api` call too) and kept. Anything else (no
or a bad identity, the operator, a version that does not exist, a failing
database) goes on to the full route in `api`, which answers it, errors included.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import parse_qsl

from mlplane_contracts.scopes import MODELS_READ
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.caller import Caller, IdentityVerifier
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.hot_path import HotAnswer, HotRequest, HotRoute
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_registry.deps import HostedRegistry
from mlplane_registry.domain import DNS_LABEL, MAX_DNS_LABEL
from mlplane_registry.mlflow import cached_reads, names
from mlplane_registry.mlflow.api import PREFIXES as MLFLOW_PREFIXES
from mlplane_registry.mlflow.errors import MlflowError
from mlplane_registry.read_cache import CachedAnswer, EntryKey, Read
from mlplane_registry.schemas import AliasedVersionOut, AliasOut, VersionOut, VersionPageOut
from mlplane_registry.store import VersionFilter

MAX_VERSION = 2**31 - 1
_VERSION_PATTERN = r"[1-9][0-9]{0,9}"


def search_entry(query: str) -> tuple[str, EntryKey] | None:
    """The cache entry of a search's query string: `(model, ("search", canonical))` when
    it searches within exactly one model, else None (such searches are not cached).

    The canonical form is the sorted parameters, so the same search written in
    another order is the same entry; it is parsed as Starlette parses it.
    """
    params = parse_qsl(query, keep_blank_values=True)
    models = [value for key, value in params if key == "model"]
    if len(models) != 1:
        return None
    return models[0], ("search", repr(sorted(params)))


def team_caller(verifier: IdentityVerifier, request: HotRequest, scope: str) -> Caller | None:
    """The caller of a hot request when its identity verifies, names a team and holds
    `scope`; None otherwise (the full route answers it, refusal included)."""
    try:
        caller = verifier.caller(request.identity, None)
    except MlplaneError:
        return None
    return caller if caller.team is not None and caller.has(scope) else None


def version_reader(
    registry: HostedRegistry, readers: UnitOfWorkFactory, team: str, model: str, version: int
) -> Read:
    """Reads one version's answer (raises `ModelVersionNotFound`)."""

    async def read() -> CachedAnswer:
        found = await registry.reading(readers, lambda use: use.get_version(team, model, version))
        return CachedAnswer(VersionOut.of(found).model_dump_json().encode(), found.etag)

    return read


def alias_reader(
    registry: HostedRegistry, readers: UnitOfWorkFactory, team: str, model: str, alias: str
) -> Read:
    """Reads an alias and the version it names (raises `AliasNotFound`, `ModelNotFound`)."""

    async def read() -> CachedAnswer:
        found, version = await registry.reading(
            readers, lambda use: use.get_alias(team, model, alias)
        )
        body = AliasedVersionOut(alias=AliasOut.of(found), version=VersionOut.of(version))
        return CachedAnswer(body.model_dump_json().encode(), found.etag)

    return read


def search_reader(
    registry: HostedRegistry,
    readers: UnitOfWorkFactory,
    team: str,
    where: VersionFilter,
    cursor: str | None,
    size: int,
) -> Read:
    """Reads one page of a search (raises `InvalidInput` for a cursor not ours)."""

    async def read() -> CachedAnswer:
        page = await registry.reading(
            readers, lambda use: use.search_versions(team, where, cursor, size)
        )
        body = VersionPageOut(
            versions=[VersionOut.of(v) for v in page.versions], next_cursor=page.next_cursor
        )
        return CachedAnswer(body.model_dump_json().encode(), None)

    return read


def hot_routes(
    registry: HostedRegistry, readers: UnitOfWorkFactory, verifier: IdentityVerifier
) -> list[HotRoute]:
    """The hot routes of one hosted registry, checking callers with `verifier`."""
    cache = registry.cache

    def team_of(request: HotRequest) -> str | None:
        caller = team_caller(verifier, request, MODELS_READ)
        return None if caller is None else caller.team

    async def version(request: HotRequest) -> HotAnswer | None:
        team, model, number = (
            team_of(request),
            request.params["name"],
            int(request.params["version"]),
        )
        if team is None or number > MAX_VERSION:
            return None
        read = version_reader(registry, readers, team, model, number)
        return await _answer(cache.answer(team, model, ("version", number), read))

    async def alias(request: HotRequest) -> HotAnswer | None:
        team, model, name = team_of(request), request.params["name"], request.params["alias"]
        if team is None:
            return None
        read = alias_reader(registry, readers, team, model, name)
        return await _answer(cache.answer(team, model, ("alias", name), read))

    async def search(request: HotRequest) -> HotAnswer | None:
        # Only hits: a search's parameters are checked by the full route, which keeps
        # only answers to valid ones.
        team, entry = team_of(request), search_entry(request.query.decode("latin-1"))
        if team is None or entry is None:
            return None
        found = await cache.lookup(team, *entry)
        return None if found is None else _as_hot(found)

    async def mlflow_version(request: HotRequest) -> HotAnswer | None:
        team, asked = team_of(request), _mlflow_query(request, "version")
        if team is None or asked is None:
            return None
        name, version = asked
        try:
            number = names.parse_version(version)
        except MlflowError:
            return None
        read = cached_reads.version_reader(registry, readers, team, name, number)
        return await _answer(cache.answer(team, name, cached_reads.version_key(number), read))

    async def mlflow_alias(request: HotRequest) -> HotAnswer | None:
        team, asked = team_of(request), _mlflow_query(request, "alias")
        if team is None or asked is None:
            return None
        name, alias = asked
        read = cached_reads.alias_reader(registry, readers, team, name, alias)
        return await _answer(cache.answer(team, name, cached_reads.alias_key(alias), read))

    mlflow_routes = [
        route
        for prefix in MLFLOW_PREFIXES
        for route in (
            HotRoute(f"{prefix}/model-versions/get", mlflow_version, query=True),
            HotRoute(f"{prefix}/registered-models/alias", mlflow_alias, query=True),
        )
    ]
    return [
        *mlflow_routes,
        HotRoute(
            "/models/{name}/versions/{version}",
            version,
            patterns={"name": DNS_LABEL_PATTERN, "version": _VERSION_PATTERN},
        ),
        HotRoute(
            "/models/{name}/aliases/{alias}",
            alias,
            patterns={"name": DNS_LABEL_PATTERN, "alias": DNS_LABEL_PATTERN},
        ),
        HotRoute("/versions", search, query=True),
    ]


def _mlflow_query(request: HotRequest, second: str) -> tuple[str, str] | None:
    """`(name, <second>)` from an MLflow read's query string holding exactly these two
    (anything else, repeated or not a name, goes to the full route)."""
    params = dict(parse_qsl(request.query.decode("latin-1"), keep_blank_values=True))
    name, value = params.get("name"), params.get(second)
    if len(params) != 2 or name is None or value is None or not _is_name(name):
        return None
    return name, value


def _is_name(name: str) -> bool:
    return 0 < len(name) <= MAX_DNS_LABEL and DNS_LABEL.fullmatch(name) is not None


async def _answer(answered: Awaitable[CachedAnswer]) -> HotAnswer | None:
    """The answer, or None (the full route answers) when the read refused."""
    try:
        return _as_hot(await answered)
    except (MlplaneError, MlflowError):
        return None


def _as_hot(found: CachedAnswer) -> HotAnswer:
    if found.etag is None:
        return HotAnswer(found.body)
    return HotAnswer(found.body, headers=((b"etag", f'"{found.etag}"'.encode()),))
