"""The registry's tables and its repository: all of its SQL lives here.

Tables are defined per schema (`define_tables`), so tests can migrate the service
into a throwaway schema and run the same code there; `metadata` is the production
`registry` schema the plug-in uses.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.messaging_tables import MessagingTables, messaging_tables
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_registry.domain import (
    Alias,
    Artifact,
    DatasetRef,
    Lifecycle,
    Lineage,
    Model,
    ModelVersion,
)

SCHEMA = "registry"


@dataclass(frozen=True, slots=True)
class RegistryTables:
    metadata: MetaData
    models: Table
    versions: Table
    aliases: Table
    messaging: MessagingTables


def define_tables(schema: str) -> RegistryTables:
    """The registry's tables (and the messaging tables) in `schema`."""
    metadata = MetaData(schema=schema)
    models = Table(
        "models",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("team", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("description", Text, nullable=False, server_default=""),
        Column("tags", JSONB, nullable=False, server_default="{}"),
        # Version numbers are handed out from here: monotonic, never reused.
        Column("last_version", Integer, nullable=False, server_default="0"),
        Column("etag", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("team", "name", name="uq_models_team_name"),
    )
    versions = Table(
        "model_versions",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(
            "model_id",
            BigInteger,
            ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("team", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("framework", Text, nullable=False),
        Column("artifact", JSONB, nullable=False),
        Column("lineage", JSONB, nullable=False),
        Column("signature", JSONB, nullable=True),
        Column("tags", JSONB, nullable=False, server_default="{}"),
        Column("status_message", Text, nullable=True),
        Column("stage", Text, nullable=False),
        Column("lifecycle", JSONB, nullable=False, server_default="{}"),
        Column("ci_run_id", Text, nullable=True),
        Column("registered_by", Text, nullable=False),
        Column("etag", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        UniqueConstraint("model_id", "ci_run_id", name="uq_model_versions_ci_run"),
        Index("ix_model_versions_team_created", "team", "created_at", "id"),
        Index("ix_model_versions_tags", "tags", postgresql_using="gin"),
    )
    aliases = Table(
        "aliases",
        metadata,
        Column(
            "model_id",
            BigInteger,
            ForeignKey(f"{schema}.models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("alias", Text, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("etag", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return RegistryTables(metadata, models, versions, aliases, messaging_tables(metadata))


TABLES = define_tables(SCHEMA)
metadata = TABLES.metadata


def new_etag() -> str:
    """A fresh entity tag: random, so a deleted and re-created resource never reuses one."""
    return uuid4().hex


@dataclass(frozen=True, slots=True)
class VersionFilter:
    """Search filters; every given one must hold."""

    model: str | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    alias: str | None = None
    stage: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends in the stable order (created_at, id)."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises `InvalidInput` for a token this service did not hand out."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, id_ = json.loads(raw)
            return cls(datetime.fromisoformat(created_at), int(id_))
        except (ValueError, TypeError) as exc:
            raise InvalidInput("invalid page cursor", field="query.cursor") from exc


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
        return None if row is None else _model(row)

    async def get_model(self, team: str, name: str, *, for_update: bool = False) -> Model | None:
        models = self._t.models
        query = select(models).where(models.c.team == team, models.c.name == name)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else _model(row)

    async def list_models(self, team: str, name_prefix: str | None, limit: int) -> list[Model]:
        models = self._t.models
        query = select(models).where(models.c.team == team)
        if name_prefix:
            query = query.where(models.c.name.startswith(name_prefix, autoescape=True))
        rows = await self._session.execute(query.order_by(models.c.name).limit(limit))
        return [_model(row) for row in rows]

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
        return _model(row)

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

    async def insert_version(
        self,
        model: Model,
        version: int,
        *,
        framework: str,
        artifact: Artifact,
        lineage: Lineage,
        signature: dict[str, Any] | None,
        tags: dict[str, str],
        status_message: str | None,
        registered_by: str,
        ci_run_id: str | None,
    ) -> ModelVersion:
        versions = self._t.versions
        lifecycle = Lifecycle()
        row = (
            await self._session.execute(
                insert(versions)
                .values(
                    model_id=model.id,
                    team=model.team,
                    model=model.name,
                    version=version,
                    framework=framework,
                    artifact=_artifact_json(artifact),
                    lineage=_lineage_json(lineage),
                    signature=signature,
                    tags=tags,
                    status_message=status_message,
                    stage=lifecycle.stage.value,
                    lifecycle=lifecycle.as_json(),
                    ci_run_id=ci_run_id,
                    registered_by=registered_by,
                    etag=new_etag(),
                )
                .returning(versions)
            )
        ).one()
        return _version(row, ())

    async def find_version_of_ci_run(self, model_id: int, ci_run_id: str) -> int | None:
        versions = self._t.versions
        return (
            await self._session.execute(
                select(versions.c.version).where(
                    versions.c.model_id == model_id, versions.c.ci_run_id == ci_run_id
                )
            )
        ).scalar_one_or_none()

    async def get_version(
        self, team: str, model: str, version: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        versions = self._t.versions
        query = select(versions).where(
            versions.c.team == team, versions.c.model == model, versions.c.version == version
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        return _version(row, await self._aliases_of(row.model_id, version))

    async def update_version(
        self, version: ModelVersion, expected_etag: str | None, **values: Any
    ) -> ModelVersion | None:
        """Write `values` (column values; `lifecycle` a Lifecycle) to `version`.

        None when `expected_etag` is given and no longer matches.
        """
        versions = self._t.versions
        columns: dict[str, Any] = {"etag": new_etag(), "updated_at": func.now()}
        for key, value in values.items():
            if key == "lifecycle":
                assert isinstance(value, Lifecycle)
                columns["lifecycle"] = value.as_json()
                columns["stage"] = value.stage.value
            else:
                columns[key] = value
        condition = versions.c.id == version.id
        if expected_etag is not None:
            condition = and_(condition, versions.c.etag == expected_etag)
        row = (
            await self._session.execute(
                update(versions).where(condition).values(columns).returning(versions)
            )
        ).first()
        if row is None:
            return None
        return _version(row, version.aliases)

    async def delete_version(self, version: ModelVersion, expected_etag: str | None) -> bool:
        """Delete the version and the aliases pointing at it; False on an ETag mismatch."""
        versions = self._t.versions
        condition = versions.c.id == version.id
        if expected_etag is not None:
            condition = and_(condition, versions.c.etag == expected_etag)
        result = await self._session.execute(
            delete(versions).where(condition).returning(versions.c.model_id)
        )
        model_id = result.scalar_one_or_none()
        if model_id is None:
            return False
        aliases = self._t.aliases
        await self._session.execute(
            delete(aliases).where(
                aliases.c.model_id == model_id, aliases.c.version == version.version
            )
        )
        return True

    async def search_versions(
        self, team: str, filters: VersionFilter, after: Cursor | None, limit: int
    ) -> list[ModelVersion]:
        """Versions of `team` matching `filters`, in (created_at, id) order, after `after`."""
        versions = self._t.versions
        aliases = self._t.aliases
        query = select(versions).where(versions.c.team == team)
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
        alias_map = await self._aliases_of_many({(row.model_id, row.version) for row in rows})
        return [_version(row, alias_map.get((row.model_id, row.version), ())) for row in rows]

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

    async def _aliases_of_many(
        self, keys: set[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[str, ...]]:
        if not keys:
            return {}
        aliases = self._t.aliases
        model_ids = {model_id for model_id, _ in keys}
        rows = await self._session.execute(
            select(aliases.c.model_id, aliases.c.version, aliases.c.alias)
            .where(aliases.c.model_id.in_(model_ids))
            .order_by(aliases.c.alias)
        )
        found: dict[tuple[int, int], list[str]] = {}
        for model_id, version, alias in rows:
            if (model_id, version) in keys:
                found.setdefault((model_id, version), []).append(alias)
        return {key: tuple(names) for key, names in found.items()}


def alias_entity(row: Row[Any], team: str, model: str) -> Alias:
    return Alias(team, model, row.alias, row.version, row.etag, row.updated_at)


def _model(row: Row[Any]) -> Model:
    return Model(
        id=row.id,
        team=row.team,
        name=row.name,
        description=row.description,
        tags=dict(row.tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
        etag=row.etag,
    )


def _version(row: Row[Any], aliases: tuple[str, ...]) -> ModelVersion:
    artifact = row.artifact
    lineage = row.lineage
    return ModelVersion(
        id=row.id,
        team=row.team,
        model=row.model,
        version=row.version,
        framework=row.framework,
        artifact=Artifact(
            artifact["uri"], artifact["size_bytes"], artifact["sha256"], artifact.get("media_type")
        ),
        lineage=Lineage(
            git_repository=lineage["git_repository"],
            commit_sha=lineage["commit_sha"],
            ci_run_url=lineage["ci_run_url"],
            git_ref=lineage.get("git_ref"),
            datasets=tuple(DatasetRef(**d) for d in lineage.get("datasets", ())),
            params=dict(lineage.get("params", {})),
            metrics=dict(lineage.get("metrics", {})),
        ),
        signature=row.signature,
        tags=dict(row.tags),
        status_message=row.status_message,
        lifecycle=Lifecycle.from_json(row.lifecycle),
        aliases=aliases,
        registered_by=row.registered_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        etag=row.etag,
    )


def _artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "uri": artifact.uri,
        "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256,
        "media_type": artifact.media_type,
    }


def _lineage_json(lineage: Lineage) -> dict[str, Any]:
    return {
        "git_repository": lineage.git_repository,
        "commit_sha": lineage.commit_sha,
        "ci_run_url": lineage.ci_run_url,
        "git_ref": lineage.git_ref,
        "datasets": [{"name": d.name, "uri": d.uri, "digest": d.digest} for d in lineage.datasets],
        "params": dict(lineage.params),
        "metrics": dict(lineage.metrics),
    }
