"""The registry's use cases, each on a unit of work it never commits.

An HTTP route or an event handler opens (or is given) the unit of work, calls one
of these, and commits once: the state change and the events it emits go to the
database together (the outbox), or neither does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlplane_contracts import events as ev
from mlplane_contracts.subjects import alias_subject, version_subject
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork

from mlplane_registry.domain import (
    Alias,
    AliasNotFound,
    Applied,
    Artifact,
    BuildFact,
    DatasetRef,
    DeploymentFact,
    Lineage,
    Model,
    ModelAlreadyExists,
    ModelNotFound,
    ModelVersion,
    ModelVersionNotFound,
    ScanFact,
    StaleETag,
    TeamArtifactLocations,
    VerifiedArtifact,
    apply_build,
    apply_deployment,
    apply_scan,
    check_artifact,
    check_dns_label,
)
from mlplane_registry.domain.registration import FAILED, PENDING, READY
from mlplane_registry.store import (
    Comparison,
    Cursor,
    MlflowSearchStore,
    NewVersion,
    Ordering,
    RegistrationStore,
    RegistryStore,
    RegistryTables,
    VersionFilter,
)
from mlplane_registry.store.rows import artifact_json, lineage_json

_log = logging.getLogger("mlplane.registry")

ANY_ETAG = "*"


def matches(if_match: str | None, etag: str) -> bool:
    """Whether an `If-Match` value (None: no precondition) accepts the current `etag`.

    `*` matches anything; otherwise one of the comma-separated tags must equal it by
    strong comparison (RFC 9110: a weak `W/` tag never matches).
    """
    if if_match is None:
        return True
    for candidate in if_match.split(","):
        candidate = candidate.strip()
        if candidate == ANY_ETAG:
            return True
        if not candidate.startswith("W/") and candidate.strip('"') == etag:
            return True
    return False


@dataclass(frozen=True, slots=True)
class VersionPage:
    versions: list[ModelVersion]
    next_cursor: str | None


class RegistryService:
    """The registry's use cases on one unit of work (its session and its outbox).

    `artifact_locations`: where each team's artifacts may lie besides the registry's
    own store (`MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS`); none by default, so a
    version can then only point at an upload the registry verified. `uploads_under`:
    the URI prefix of the registry's own store, where every upload it verified lies;
    a version's artifact elsewhere is then not looked up among them (None: always).
    """

    def __init__(
        self,
        uow: UnitOfWork,
        tables: RegistryTables,
        artifact_locations: TeamArtifactLocations | None = None,
        uploads_under: str | None = None,
    ) -> None:
        self._uow = uow
        self._store = RegistryStore(uow.session, tables)
        self._tables = tables
        self._locations = artifact_locations or TeamArtifactLocations()
        self._uploads_under = uploads_under

    # -- models -----------------------------------------------------------------------

    async def create_model(
        self, team: str, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> Model:
        """A new model of `team`. Raises `InvalidName`, `ModelAlreadyExists`."""
        check_dns_label(team, "team")
        check_dns_label(name, "name")
        model = await self._store.insert_model(team, name, description, tags or {})
        if model is None:
            raise ModelAlreadyExists(f"team {team} already has a model named {name}", name=name)
        return model

    async def get_model(self, team: str, name: str, *, for_update: bool = False) -> Model:
        """Raises `ModelNotFound` (also for another team's model: teams see only their own)."""
        model = await self._store.get_model(team, name, for_update=for_update)
        if model is None:
            raise ModelNotFound(f"team {team} has no model named {name}", name=name)
        return model

    async def list_models(self, team: str, name_prefix: str | None, limit: int) -> list[Model]:
        models: list[Model] = await self._store.list_models(team, name_prefix, limit)
        return models

    async def update_model(
        self,
        team: str,
        name: str,
        *,
        description: str | None,
        tags: dict[str, str] | None,
        if_match: str | None = None,
    ) -> Model:
        """Raises `ModelNotFound`, `StaleETag` when `if_match` does not match."""
        model = await self.get_model(team, name, for_update=True)
        _check_etag(if_match, model.etag, f"model {name}")
        return await self._store.update_model(model.id, description=description, tags=tags)

    async def rename_model(self, team: str, name: str, new_name: str) -> Model:
        """The model under `new_name`; its versions and aliases follow it.

        Raises `ModelNotFound`, `ModelAlreadyExists`, `InvalidName`.
        """
        check_dns_label(new_name, "name")
        model = await self.get_model(team, name, for_update=True)
        if new_name == name:
            return model
        renamed = await self._store.rename_model(model, new_name)
        if renamed is None:
            raise ModelAlreadyExists(
                f"team {team} already has a model named {new_name}", name=new_name
            )
        return renamed

    async def search_models_by(
        self,
        team: str,
        comparisons: tuple[Comparison, ...],
        orderings: tuple[Ordering, ...],
        offset: int,
        limit: int,
    ) -> list[Model]:
        """`team`'s models matching every comparison (MLflow's search), ordered."""
        found: list[Model] = await MlflowSearchStore(self._uow.session, self._tables).search_models(
            team, comparisons, orderings, offset, limit
        )
        return found

    async def search_versions_by(
        self,
        team: str,
        comparisons: tuple[Comparison, ...],
        orderings: tuple[Ordering, ...],
        offset: int,
        limit: int,
    ) -> list[ModelVersion]:
        """`team`'s versions matching every comparison (MLflow's search), ordered."""
        store = MlflowSearchStore(self._uow.session, self._tables)
        found: list[ModelVersion] = await store.search_versions(
            team, comparisons, orderings, offset, limit
        )
        return found

    async def delete_model(
        self, team: str, name: str, principal: str, if_match: str | None = None
    ) -> None:
        """Delete a model, its versions and its aliases (each alias removal is announced).

        Raises `ModelNotFound`, `StaleETag`.
        """
        model = await self.get_model(team, name, for_update=True)
        _check_etag(if_match, model.etag, f"model {name}")
        for alias in await self._store.aliases_of_model(model.id):
            self._emit_alias_changed(team, name, alias.alias, None, alias.version, principal)
        await self._store.delete_model(model.id)

    # -- versions ---------------------------------------------------------------------

    async def register_version(
        self,
        team: str,
        model_name: str,
        *,
        framework: str,
        artifact: Artifact,
        lineage: Lineage,
        registered_by: str,
        signature: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        status_message: str | None = None,
        ci_run_id: str | None = None,
        create_model: bool = False,
        artifact_admitted: bool = False,
    ) -> ModelVersion:
        """The next version of the model, announced by `model.version.registered`.

        With `create_model`, a missing model is created first. With `ci_run_id`, a
        run that already registered a version gets that version back (no second one).
        The artifact must be an upload the registry verified for this team and model,
        or lie under a location configured for the team (`domain.artifacts`).
        `artifact_admitted`: the artifact is another version's of the same team (a copy),
        admitted when that one was registered. Raises `ArtifactRefused` (before anything
        else is looked at or changed), `ModelNotFound`, `InvalidName`.
        """
        if not artifact_admitted:
            verified = (
                await self._store.get_verified_artifact(artifact.uri)
                if self._may_be_upload(artifact.uri)
                else None
            )
            check_artifact(team, model_name, artifact, verified, self._locations)
        fields = NewVersion(
            framework=framework,
            artifact=artifact,
            lineage=lineage,
            signature=signature,
            tags=tags or {},
            status_message=status_message,
            registered_by=registered_by,
            ci_run_id=ci_run_id,
        )
        if ci_run_id is None:
            # The common case in one round trip: the model exists, no CI run to match.
            inserted = await self._store.insert_next_version(team, model_name, fields)
            if inserted is not None:
                self._emit_registered(inserted)
                return inserted
        model = await self._store.get_model(team, model_name, for_update=True)
        if model is None:
            if not create_model:
                raise ModelNotFound(f"team {team} has no model named {model_name}", name=model_name)
            check_dns_label(team, "team")
            check_dns_label(model_name, "model")
            await self._store.insert_model(team, model_name, "", {})
            model = await self.get_model(team, model_name, for_update=True)
        if ci_run_id is not None:
            existing = await self._store.find_version_of_ci_run(model.id, ci_run_id)
            if existing is not None:
                return await self.get_version(team, model_name, existing)
        number = await self._store.next_version_number(model.id)
        version = await self._store.insert_version(model, number, fields)
        self._emit_registered(version)
        return version

    async def register_pending_version(
        self,
        team: str,
        model_name: str,
        *,
        framework: str,
        source: str,
        inputs: dict[str, Any],
        registered_by: str,
        tags: dict[str, str],
    ) -> ModelVersion:
        """The next version of the model, `pending` until the registration worker has read
        and verified the artifact at `source` (nothing is announced before).

        `inputs` keeps what the worker needs besides the source (the caller's lineage
        tags, run id and link). Raises `ModelNotFound`.
        """
        version = await self._store.insert_next_version(
            team,
            model_name,
            NewVersion(
                framework=framework,
                artifact=Artifact(source, 0, "", None),
                lineage=Lineage("", "", ""),
                signature=None,
                tags=tags,
                status_message="the registry is reading and verifying the artifact",
                registered_by=registered_by,
                ci_run_id=None,
                registration=PENDING,
            ),
        )
        if version is None:
            raise ModelNotFound(f"team {team} has no model named {model_name}", name=model_name)
        trace = JobTrace.current()
        await RegistrationStore(self._uow.session, self._tables).insert(
            version.id, source, inputs, trace.traceparent, trace.tracestate
        )
        return version

    async def complete_registration(
        self,
        version_id: int,
        artifact: Artifact,
        lineage: Lineage,
        status_message: str,
        found_tags: dict[str, str] | None = None,
    ) -> ModelVersion | None:
        """Mark a pending version `ready` with its verified artifact and lineage, announced by
        `model.version.registered`; None when the version is gone or no longer pending.
        `found_tags` (what resolving the source learnt) are added where not set already."""
        current = await self._store.get_version_by_id(version_id)
        await RegistrationStore(self._uow.session, self._tables).finish(version_id)
        if current is None or current.registration != PENDING:
            return None
        version = await self._store.update_version(
            current,
            artifact=artifact_json(artifact),
            lineage=lineage_json(lineage),
            registration=READY,
            status_message=status_message,
            tags={**(found_tags or {}), **current.tags},
        )
        self._emit_registered(version)
        return version

    async def fail_registration(self, version_id: int, message: str) -> ModelVersion | None:
        """Mark a pending version `failed` with a message saying why and what to do."""
        current = await self._store.get_version_by_id(version_id)
        await RegistrationStore(self._uow.session, self._tables).finish(version_id)
        if current is None or current.registration != PENDING:
            return None
        updated: ModelVersion = await self._store.update_version(
            current, registration=FAILED, status_message=message
        )
        return updated

    def _emit_registered(self, version: ModelVersion) -> None:
        artifact = version.artifact
        self._uow.emit(
            ev.ModelVersionRegistered(
                team=version.team,
                model=version.model,
                version=version.version,
                artifact=ev.ModelArtifact(
                    uri=event_uri(artifact.uri),
                    sha256=artifact.sha256,
                    size_bytes=artifact.size_bytes,
                    framework=ev.ModelFramework(version.framework),
                    media_type=artifact.media_type,
                ),
                lineage=lineage_to_contract(version.lineage),
                tags=version.tags,
                registered_by=version.registered_by,
                registered_at=version.created_at,
                attested=version.lineage.attested,
            ),
            subject=version.subject,
        )

    def _may_be_upload(self, uri: str) -> bool:
        return self._uploads_under is None or uri.startswith(self._uploads_under)

    async def record_verified_artifact(
        self, team: str, model: str, uri: str, size_bytes: int, sha256: str
    ) -> None:
        """Remember that the registry completed and checked this upload of `team`'s `model`:
        versions of that model may then point at `uri`."""
        await self._store.record_verified_artifact(
            VerifiedArtifact(team, model, uri, size_bytes, sha256)
        )

    async def find_verified_artifact(self, uri: str) -> VerifiedArtifact | None:
        """The registry's record of a completed upload to `uri`, if there is one."""
        found: VerifiedArtifact | None = await self._store.get_verified_artifact(uri)
        return found

    async def get_version(
        self, team: str, model: str, version: int, *, for_update: bool = False
    ) -> ModelVersion:
        """Raises `ModelVersionNotFound`."""
        found = await self._store.get_version(team, model, version, for_update=for_update)
        if found is None:
            raise ModelVersionNotFound(
                f"model {model} of team {team} has no version {version}",
                name=model,
                version=version,
            )
        return found

    async def update_version(
        self,
        team: str,
        model: str,
        version: int,
        *,
        tags: dict[str, str] | None = None,
        status_message: str | None = None,
        signature: dict[str, Any] | None = None,
        if_match: str | None = None,
    ) -> ModelVersion:
        """Change a version's descriptive fields. Raises `ModelVersionNotFound`, `StaleETag`."""
        current = await self.get_version(team, model, version, for_update=True)
        _check_etag(if_match, current.etag, f"version {version} of {model}")
        values: dict[str, Any] = {}
        if tags is not None:
            values["tags"] = tags
        if status_message is not None:
            values["status_message"] = status_message
        if signature is not None:
            values["signature"] = signature
        return await self._store.update_version(current, **values)

    async def delete_version(
        self, team: str, model: str, version: int, principal: str, if_match: str | None = None
    ) -> None:
        """Delete a version and the aliases on it (each removal announced).

        Raises `ModelVersionNotFound`, `StaleETag`.
        """
        current = await self.get_version(team, model, version, for_update=True)
        _check_etag(if_match, current.etag, f"version {version} of {model}")
        for alias in current.aliases:
            self._emit_alias_changed(team, model, alias, None, version, principal)
        await self._store.delete_version(current)

    async def search_versions(
        self, team: str, filters: VersionFilter, cursor: str | None, limit: int
    ) -> VersionPage:
        """One page of `team`'s versions matching `filters`, in creation order.

        Raises `InvalidInput` for a cursor this service did not hand out.
        """
        after = None if cursor is None else Cursor.decode(cursor)
        found = await self._store.search_versions(team, filters, after, limit + 1)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = Cursor(last.created_at, last.id).encode()
        return VersionPage(page, next_cursor)

    # -- aliases ----------------------------------------------------------------------

    async def set_alias(
        self,
        team: str,
        model: str,
        alias: str,
        version: int,
        principal: str,
        if_match: str | None = None,
    ) -> Alias:
        """Point `alias` at `version`, announced by `model.alias.changed` (if it moved).

        `if_match` (an ETag of the alias, or `*`) makes it conditional: a writer whose
        ETag is no longer current gets `StaleETag`. Raises `InvalidName`,
        `ModelNotFound`, `ModelVersionNotFound`, `StaleETag`.
        """
        check_dns_label(alias, "alias")
        target = await self.get_version(team, model, version)
        model_id = await self._model_id(team, model)
        previous: int | None = None
        etag: str | None = None
        if if_match is None:
            etag = await self._store.insert_alias(model_id, alias, version)
        if etag is None:
            # Locked: a concurrent writer with the same If-Match waits here, then
            # sees the ETag the first one wrote and is refused.
            row = await self._store.get_alias(model_id, alias, for_update=True)
            if row is None:
                if if_match is not None:
                    raise StaleETag(
                        f"alias {alias} of {model} does not exist; If-Match cannot match",
                        alias=alias,
                    )
                raise AliasNotFound(f"alias {alias} of {model} vanished; retry", alias=alias)
            _check_etag(if_match, row.etag, f"alias {alias} of {model}")
            previous = int(row.version)
            if previous == version:  # already there: no change, no event, same ETag
                return Alias(team, model, alias, version, row.etag, row.updated_at)
            etag = await self._store.update_alias(model_id, alias, version)
        self._emit_alias_changed(team, model, alias, target.version, previous, principal)
        return Alias(team, model, alias, version, etag, datetime.now(UTC))

    async def delete_alias(
        self, team: str, model: str, alias: str, principal: str, if_match: str | None = None
    ) -> None:
        """Remove `alias`, announced by `model.alias.changed` with no version.

        Raises `ModelNotFound`, `AliasNotFound`, `StaleETag`.
        """
        model_id = await self._model_id(team, model)
        row = await self._store.get_alias(model_id, alias, for_update=True)
        if row is None:
            raise AliasNotFound(f"model {model} has no alias {alias}", alias=alias)
        _check_etag(if_match, row.etag, f"alias {alias} of {model}")
        await self._store.delete_alias(model_id, alias)
        self._emit_alias_changed(team, model, alias, None, int(row.version), principal)

    async def get_alias(self, team: str, model: str, alias: str) -> tuple[Alias, ModelVersion]:
        """The alias and the version it points at. Raises `ModelNotFound`, `AliasNotFound`."""
        found = await self._store.get_aliased_version(team, model, alias)
        if found is None:
            await self._model_id(team, model)  # ModelNotFound, if that is why
            raise AliasNotFound(f"model {model} has no alias {alias}", alias=alias)
        row, version = found
        return (
            Alias(team, model, alias, row.alias_version, row.alias_etag, row.alias_updated_at),
            version,
        )

    # -- lifecycle --------------------------------------------------------------------

    async def record_build(
        self, team: str, model: str, version: int, fact: BuildFact
    ) -> Applied | None:
        """Apply a build fact; None when the version no longer exists.

        Raises `InvalidTransition` when it contradicts the version's history.
        """
        return await self._apply(team, model, version, lambda lc: apply_build(lc, fact))

    async def record_scan(
        self, team: str, model: str, version: int, fact: ScanFact
    ) -> Applied | None:
        """Apply a scan verdict; None when the version no longer exists.

        Raises `InvalidTransition`.
        """
        return await self._apply(team, model, version, lambda lc: apply_scan(lc, fact))

    async def record_deployment(
        self, team: str, model: str, version: int, environment: str, fact: DeploymentFact
    ) -> Applied | None:
        """Apply a deployment phase; None when the version no longer exists.

        Raises `InvalidTransition`.
        """
        return await self._apply(
            team, model, version, lambda lc: apply_deployment(lc, environment, fact)
        )

    async def _apply(self, team: str, model: str, number: int, step: Any) -> Applied | None:
        # Locked, so two consumers applying facts to one version take turns.
        version = await self._store.get_version(team, model, number, for_update=True)
        if version is None:
            _log.warning(
                "lifecycle event for %s ignored: the version does not exist (deleted?)",
                version_subject(team, model, number),
            )
            return None
        applied: Applied = step(version.lifecycle)
        if applied.stale:
            _log.info("%s: %s", version.subject, applied.reason)
            return applied
        await self._store.update_version(version, lifecycle=applied.lifecycle)
        return applied

    # -- helpers ----------------------------------------------------------------------

    async def _model_id(self, team: str, model: str) -> int:
        found: Model = await self.get_model(team, model)
        model_id: int = found.id
        return model_id

    def _emit_alias_changed(
        self,
        team: str,
        model: str,
        alias: str,
        version: int | None,
        previous: int | None,
        principal: str,
    ) -> None:
        self._uow.emit(
            ev.ModelAliasChanged(
                team=team,
                model=model,
                alias=alias,
                version=version,
                previous_version=previous,
                changed_by=principal,
                changed_at=datetime.now(UTC),
            ),
            subject=alias_subject(team, model, alias),
        )


def _check_etag(if_match: str | None, etag: str, what: str) -> None:
    if not matches(if_match, etag):
        raise StaleETag(
            f"{what} changed since you read it (If-Match {if_match} is not its ETag); "
            "read it again and retry",
            current_etag=f'"{etag}"',
        )


def event_uri(uri: str) -> str:
    """An artifact URI as events carry it (`scheme://...`): MLflow's `mlflow-artifacts:/p`
    is the same location as `mlflow-artifacts:///p` (no host: the tracking server's)."""
    scheme, sep, rest = uri.partition(":/")
    if sep and not rest.startswith("/"):
        return f"{scheme}:///{rest}"
    return uri


def lineage_to_contract(lineage: Lineage) -> ev.Lineage:
    """The event's lineage; what is unknown is the contract's `UNATTESTED_*` placeholder."""
    return ev.Lineage(
        git_repository=lineage.git_repository or ev.UNATTESTED_GIT_REPOSITORY,
        commit_sha=lineage.commit_sha or ev.UNATTESTED_COMMIT_SHA,
        git_ref=lineage.git_ref,
        ci_run_url=lineage.ci_run_url or ev.UNATTESTED_CI_RUN_URL,
        datasets=tuple(
            ev.DatasetRef(name=d.name, uri=d.uri, digest=d.digest) for d in lineage.datasets
        ),
        params=dict(lineage.params),
        metrics=dict(lineage.metrics),
    )


def lineage_from_contract(lineage: ev.Lineage) -> Lineage:
    return Lineage(
        git_repository=lineage.git_repository,
        commit_sha=lineage.commit_sha,
        ci_run_url=lineage.ci_run_url,
        git_ref=lineage.git_ref,
        datasets=tuple(DatasetRef(d.name, d.uri, d.digest) for d in lineage.datasets),
        params=dict(lineage.params),
        metrics=dict(lineage.metrics),
    )
