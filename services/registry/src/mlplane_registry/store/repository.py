"""The registry's repository: every query it runs, on the unit of work's session."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_registry.domain import (
    Artifact,
    Lifecycle,
    Lineage,
    Model,
    ModelVersion,
    VerifiedArtifact,
)
from mlplane_registry.store.rows import (
    artifact_json,
    lineage_json,
    model_from_row,
    new_etag,
    version_from_row,
)
from mlplane_registry.store.search import Cursor, VersionFilter
from mlplane_registry.store.tables import RegistryTables


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What a new version row is made of, besides its model and number."""

    framework: str
    artifact: Artifact
    lineage: Lineage
    signature: dict[str, Any] | None
    tags: dict[str, str]
    status_message: str | None
    registered_by: str
    ci_run_id: str | None
    registration: str = "ready"


class RegistryStore:
    """The registry's repository on one session (the unit of work's)."""

    def __init__(self, session: AsyncSession, tables: RegistryTables) -> None:
        self._session = session
        self._t = tables

    # -- models -----------------------------------------------------------------------

    async def insert_model(
        self, team: str, name: str, description: str, tags: dict[str, str]
    ) -> Model | None:
        """The new model, or None when `team` already has one called `name`."""
        models = self._t.models
        row = (
            await self._session.execute(
                insert(models)
                .values(team=team, name=name, description=description, tags=tags, etag=new_etag())
                .on_conflict_do_nothing(constraint="uq_models_team_name")
                .returning(models)
            )
        ).first()
        return None if row is None else model_from_row(row)

    async def get_model(self, team: str, name: str, *, for_update: bool = False) -> Model | None:
        models = self._t.models
        query = select(models).where(models.c.team == team, models.c.name == name)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else model_from_row(row)

    async def list_models(self, team: str, name_prefix: str | None, limit: int) -> list[Model]:
        models = self._t.models
        query = select(models).where(models.c.team == team)
        if name_prefix:
            query = query.where(models.c.name.startswith(name_prefix, autoescape=True))
        rows = await self._session.execute(query.order_by(models.c.name).limit(limit))
        return [model_from_row(row) for row in rows]

    async def update_model(
        self, model_id: int, *, description: str | None, tags: dict[str, str] | None
    ) -> Model:
        models = self._t.models
        values: dict[str, Any] = {"etag": new_etag(), "updated_at": func.now()}
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = tags
        row = (
            await self._session.execute(
                update(models).where(models.c.id == model_id).values(values).returning(models)
            )
        ).one()
        return model_from_row(row)

    async def rename_model(self, model: Model, new_name: str) -> Model | None:
        """The model under `new_name`, its versions and verified uploads following; None
        when the team already has a model called `new_name`."""
        models, versions = self._t.models, self._t.versions
        uploads = self._t.verified_artifacts
        taken = await self.get_model(model.team, new_name)
        if taken is not None:
            return None
        row = (
            await self._session.execute(
                update(models)
                .where(models.c.id == model.id)
                .values(name=new_name, etag=new_etag(), updated_at=func.now())
                .returning(models)
            )
        ).one()
        await self._session.execute(
            update(versions)
            .where(versions.c.model_id == model.id)
            .values(model=new_name, etag=new_etag())
        )
        await self._session.execute(
            update(uploads)
            .where(uploads.c.team == model.team, uploads.c.model == model.name)
            .values(model=new_name)
        )
        return model_from_row(row)

    async def delete_model(self, model_id: int) -> None:
        await self._session.execute(delete(self._t.models).where(self._t.models.c.id == model_id))

    async def next_version_number(self, model_id: int) -> int:
        """The model's next version number (locks the model row until commit)."""
        models = self._t.models
        return int(
            (
                await self._session.execute(
                    update(models)
                    .where(models.c.id == model_id)
                    .values(last_version=models.c.last_version + 1)
                    .returning(models.c.last_version)
                )
            ).scalar_one()
        )

    # -- versions ---------------------------------------------------------------------

    async def insert_version(self, model: Model, number: int, new: NewVersion) -> ModelVersion:
        """Version `number` of `model` (its number claimed by `next_version_number`)."""
        versions = self._t.versions
        row = (
            await self._session.execute(
                insert(versions)
                .values(
                    model_id=model.id,
                    team=model.team,
                    model=model.name,
                    version=number,
                    **self._version_values(new),
                )
                .returning(versions)
            )
        ).one()
        return version_from_row(row, ())

    async def insert_next_version(
        self, team: str, name: str, new: NewVersion
    ) -> ModelVersion | None:
        """The next version of `team`'s model `name`, its number claimed and the row
        inserted in one statement (the model row stays locked until commit); None when
        the team has no such model."""
        statement = _next_version_statement(self._t)
        row = (
            await self._session.execute(
                statement,
                {
                    "claimed_team": team,
                    "claimed_name": name,
                    **{f"new_{key}": value for key, value in self._version_values(new).items()},
                },
            )
        ).first()
        return None if row is None else version_from_row(row, ())

    @staticmethod
    def _version_values(new: NewVersion) -> dict[str, Any]:
        lifecycle = Lifecycle()
        return {
            "framework": new.framework,
            "artifact": artifact_json(new.artifact),
            "lineage": lineage_json(new.lineage),
            "signature": new.signature,
            "tags": new.tags,
            "status_message": new.status_message,
            "stage": lifecycle.stage.value,
            "lifecycle": lifecycle.as_json(),
            "ci_run_id": new.ci_run_id,
            "registered_by": new.registered_by,
            "registration": new.registration,
            "etag": new_etag(),
        }

    async def find_version_of_ci_run(self, model_id: int, ci_run_id: str) -> int | None:
        versions = self._t.versions
        return (
            await self._session.execute(
                select(versions.c.version).where(
                    versions.c.model_id == model_id, versions.c.ci_run_id == ci_run_id
                )
            )
        ).scalar_one_or_none()

    async def get_version_by_id(self, version_id: int) -> ModelVersion | None:
        """A version by its row id, locked (the registration worker's)."""
        versions = self._t.versions
        row = (
            await self._session.execute(
                select(versions).where(versions.c.id == version_id).with_for_update()
            )
        ).first()
        if row is None:
            return None
        return version_from_row(row, await self._aliases_of(row.model_id, row.version))

    async def get_version(
        self, team: str, model: str, version: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        versions = self._t.versions
        if for_update:
            query = (
                select(versions)
                .where(
                    versions.c.team == team,
                    versions.c.model == model,
                    versions.c.version == version,
                )
                .with_for_update()
            )
            row = (await self._session.execute(query)).first()
            if row is None:
                return None
            return version_from_row(row, await self._aliases_of(row.model_id, version))
        # One round trip: the version with its alias names (reads are the hot path).
        row = (
            await self._session.execute(
                _read_statements(self._t).version,
                {"team": team, "model": model, "version": version},
            )
        ).first()
        return None if row is None else version_from_row(row, _names(row.alias_names))

    async def get_aliased_version(
        self, team: str, model: str, alias: str
    ) -> tuple[Row[Any], ModelVersion] | None:
        """The alias row (`alias_version`, `alias_etag`, `alias_updated_at`) and its version.

        One round trip; None when the model or the alias does not exist.
        """
        row = (
            await self._session.execute(
                _read_statements(self._t).aliased_version,
                {"team": team, "model": model, "alias": alias},
            )
        ).first()
        if row is None:
            return None
        return row, version_from_row(row, _names(row.alias_names))

    async def update_version(self, version: ModelVersion, **values: Any) -> ModelVersion:
        """Write `values` (column values; `lifecycle` a Lifecycle) to a locked `version`."""
        versions = self._t.versions
        columns: dict[str, Any] = {"etag": new_etag(), "updated_at": func.now()}
        for key, value in values.items():
            if key == "lifecycle":
                assert isinstance(value, Lifecycle)
                columns["lifecycle"] = value.as_json()
                columns["stage"] = value.stage.value
            else:
                columns[key] = value
        row = (
            await self._session.execute(
                update(versions)
                .where(versions.c.id == version.id)
                .values(columns)
                .returning(versions)
            )
        ).one()
        return version_from_row(row, version.aliases)

    async def delete_version(self, version: ModelVersion) -> None:
        """Delete a locked version and the aliases pointing at it."""
        versions = self._t.versions
        aliases = self._t.aliases
        await self._session.execute(delete(versions).where(versions.c.id == version.id))
        await self._session.execute(
            delete(aliases).where(
                aliases.c.model_id == version.model_id, aliases.c.version == version.version
            )
        )

    async def search_versions(
        self, team: str, filters: VersionFilter, after: Cursor | None, limit: int
    ) -> list[ModelVersion]:
        """Versions of `team` matching `filters`, in (created_at, id) order, after `after`."""
        versions = self._t.versions
        aliases = self._t.aliases
        query = _read_statements(self._t).search_base.where(versions.c.team == team)
        if filters.model:
            query = query.where(versions.c.model == filters.model)
        if filters.name_prefix:
            query = query.where(versions.c.model.startswith(filters.name_prefix, autoescape=True))
        if filters.tags:
            query = query.where(versions.c.tags.contains(dict(filters.tags)))
        if filters.stage:
            query = query.where(versions.c.stage == filters.stage)
        if filters.created_after is not None:
            query = query.where(versions.c.created_at > filters.created_after)
        if filters.created_before is not None:
            query = query.where(versions.c.created_at < filters.created_before)
        if filters.alias:
            query = query.where(
                select(aliases.c.alias)
                .where(
                    aliases.c.model_id == versions.c.model_id,
                    aliases.c.version == versions.c.version,
                    aliases.c.alias == filters.alias,
                )
                .exists()
            )
        if after is not None:
            query = query.where(
                or_(
                    versions.c.created_at > after.created_at,
                    and_(versions.c.created_at == after.created_at, versions.c.id > after.id),
                )
            )
        query = query.order_by(versions.c.created_at, versions.c.id).limit(limit)
        rows = (await self._session.execute(query)).all()
        return [version_from_row(row, _names(row.alias_names)) for row in rows]

    # -- verified artifacts -----------------------------------------------------------

    async def record_verified_artifact(self, verified: VerifiedArtifact) -> None:
        """Remember an upload the registry checked; recording it again changes nothing."""
        table = self._t.verified_artifacts
        await self._session.execute(
            insert(table)
            .values(
                uri=verified.uri,
                team=verified.team,
                model=verified.model,
                size_bytes=verified.size_bytes,
                sha256=verified.sha256,
            )
            .on_conflict_do_nothing(index_elements=[table.c.uri])
        )

    async def get_verified_artifact(self, uri: str) -> VerifiedArtifact | None:
        table = self._t.verified_artifacts
        row = (await self._session.execute(select(table).where(table.c.uri == uri))).first()
        if row is None:
            return None
        return VerifiedArtifact(row.team, row.model, row.uri, int(row.size_bytes), row.sha256)

    # -- aliases ----------------------------------------------------------------------

    async def get_alias(
        self, model_id: int, alias: str, *, for_update: bool = False
    ) -> Row[Any] | None:
        aliases = self._t.aliases
        query = select(aliases).where(aliases.c.model_id == model_id, aliases.c.alias == alias)
        if for_update:
            query = query.with_for_update()
        return (await self._session.execute(query)).first()

    async def insert_alias(self, model_id: int, alias: str, version: int) -> str | None:
        """The new alias's ETag; None when it exists already (a concurrent writer won)."""
        aliases = self._t.aliases
        etag = new_etag()
        row = (
            await self._session.execute(
                insert(aliases)
                .values(model_id=model_id, alias=alias, version=version, etag=etag)
                .on_conflict_do_nothing()
                .returning(aliases.c.etag)
            )
        ).first()
        return None if row is None else etag

    async def update_alias(self, model_id: int, alias: str, version: int) -> str:
        """Point an existing alias (locked by `get_alias(for_update=True)`) at `version`."""
        aliases = self._t.aliases
        etag = new_etag()
        await self._session.execute(
            update(aliases)
            .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            .values(version=version, etag=etag, updated_at=func.now())
        )
        return etag

    async def delete_alias(self, model_id: int, alias: str) -> None:
        aliases = self._t.aliases
        await self._session.execute(
            delete(aliases).where(aliases.c.model_id == model_id, aliases.c.alias == alias)
        )

    async def aliases_of_model(self, model_id: int) -> list[Row[Any]]:
        aliases = self._t.aliases
        rows = await self._session.execute(
            select(aliases).where(aliases.c.model_id == model_id).order_by(aliases.c.alias)
        )
        return list(rows)

    async def _aliases_of(self, model_id: int, version: int) -> tuple[str, ...]:
        aliases = self._t.aliases
        rows = await self._session.execute(
            select(aliases.c.alias)
            .where(aliases.c.model_id == model_id, aliases.c.version == version)
            .order_by(aliases.c.alias)
        )
        return tuple(rows.scalars())


def version_names(alias_names: list[str] | None) -> tuple[str, ...]:
    """A version's alias names as its row's `alias_names` column holds them, sorted."""
    return tuple(sorted(alias_names or ()))


_names = version_names


def alias_names_of(tables: RegistryTables) -> Any:
    """The `alias_names` column a version query selects (its aliases, in one round trip)."""
    return _read_statements(tables).alias_names


_VERSION_VALUES = (
    "framework",
    "artifact",
    "lineage",
    "signature",
    "tags",
    "status_message",
    "stage",
    "lifecycle",
    "ci_run_id",
    "registered_by",
    "registration",
    "etag",
)
"""The columns of a new version besides its model and number (`_version_values`)."""


@functools.cache
def _next_version_statement(tables: RegistryTables) -> Any:
    """Claim the next number of a model (`claimed_team`, `claimed_name`) and insert that
    version (`new_<column>` for each of `_VERSION_VALUES`), returning the row; built once.

    No parameter is named like a column: SQLAlchemy would take it as a value to set.
    """
    models, versions = tables.models, tables.versions
    claimed = (
        update(models)
        .where(
            models.c.team == bindparam("claimed_team"),
            models.c.name == bindparam("claimed_name"),
        )
        .values(last_version=models.c.last_version + 1)
        .returning(models.c.id, models.c.team, models.c.name, models.c.last_version)
        .cte("claimed")
    )
    chosen = select(
        claimed.c.id,
        claimed.c.team,
        claimed.c.name,
        claimed.c.last_version,
        *(bindparam(f"new_{column}", type_=versions.c[column].type) for column in _VERSION_VALUES),
    )
    columns = ["model_id", "team", "model", "version", *_VERSION_VALUES]
    return insert(versions).from_select(columns, chosen).returning(versions)


@dataclass(frozen=True, slots=True)
class _ReadStatements:
    """The hot read queries, built once per set of tables: building a statement per
    request cost as much CPU as the rest of the request."""

    version: Select[Any]
    aliased_version: Select[Any]
    search_base: Select[Any]
    """Versions with their alias names; a search adds its filters."""
    alias_names: Any


@functools.cache
def _read_statements(tables: RegistryTables) -> _ReadStatements:
    models, versions, aliases = tables.models, tables.versions, tables.aliases
    # Its own name for the aliases table: the aliased-version query joins `aliases` too.
    named = aliases.alias("version_aliases")
    alias_names = (
        select(func.array_agg(named.c.alias))
        .where(named.c.model_id == versions.c.model_id, named.c.version == versions.c.version)
        .correlate(versions)
        .scalar_subquery()
        .label("alias_names")
    )
    version = select(versions, alias_names).where(
        versions.c.team == bindparam("team"),
        versions.c.model == bindparam("model"),
        versions.c.version == bindparam("version"),
    )
    aliased_version = (
        select(
            aliases.c.version.label("alias_version"),
            aliases.c.etag.label("alias_etag"),
            aliases.c.updated_at.label("alias_updated_at"),
            versions,
            alias_names,
        )
        .select_from(
            models.join(aliases, aliases.c.model_id == models.c.id).join(
                versions,
                and_(
                    versions.c.model_id == aliases.c.model_id,
                    versions.c.version == aliases.c.version,
                ),
            )
        )
        .where(
            models.c.team == bindparam("team"),
            models.c.name == bindparam("model"),
            aliases.c.alias == bindparam("alias"),
        )
    )
    return _ReadStatements(version, aliased_version, select(versions, alias_names), alias_names)
