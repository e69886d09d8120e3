"""MLflow's registry calls as the registry's use cases, on one unit of work.

Each method checks MLflow's input as mlplane must have it (names, tags, versions,
filters: INVALID_PARAMETER_VALUE otherwise), calls `RegistryService` and answers
domain objects the API turns into MLflow's messages. Like every use case, none
commits: the request's unit of work does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mlplane_registry.domain import Alias, AliasNotFound, Model, ModelVersion, registration
from mlplane_registry.mlflow import entities, errors, names, paging, search, tags
from mlplane_registry.service import RegistryService
from mlplane_registry.store import VersionFilter


class MlflowRegistryService:
    """MLflow's model-registry operations for one team's caller, on `registry`'s unit of work.

    `max_page_size` bounds every search page (and the pages `all_versions` reads);
    `tracking`: a tracking server is configured (a version's lineage may come from its run).
    Raises what `RegistryService` raises (`ModelNotFound`, `ModelAlreadyExists`, ...)
    and `MlflowError` for input mlplane cannot take.
    """

    def __init__(
        self, registry: RegistryService, max_page_size: int, *, tracking: bool = False
    ) -> None:
        self._registry = registry
        self._max_page_size = max_page_size
        self._tracking = tracking

    # -- registered models ------------------------------------------------------------

    async def create_model(
        self, team: str, name: str, description: str | None, tag_pairs: Iterable[tuple[str, str]]
    ) -> Model:
        checked = dict(tags.check_tag(key, value) for key, value in tag_pairs)
        return await self._registry.create_model(
            team, names.check_model_name(name), description or "", checked
        )

    async def get_model(self, team: str, name: str) -> tuple[Model, list[ModelVersion]]:
        """The model and all its versions (MLflow's `get` shows its aliases and latest)."""
        model = await self._registry.get_model(team, name)
        return model, await self.all_versions(team, name)

    async def search_models(
        self,
        team: str,
        filter_text: str | None,
        order_by: Sequence[str],
        max_results: int | None,
        page_token: str | None,
    ) -> tuple[list[Model], str | None]:
        """One page of the team's models the filter selects, and the next page's token."""
        query = search.parse_filter(filter_text, versions=False)
        orderings = search.parse_order_by(order_by, versions=False)
        size = self._page_size(max_results)
        offset = paging.decode_offset(page_token)
        if query.prompts_only:
            return [], None
        models = await self._registry.search_models_by(
            team, query.comparisons, orderings, offset, size + 1
        )
        following = paging.encode_offset(offset + size) if len(models) > size else None
        return models[:size], following

    async def rename_model(self, team: str, name: str, new_name: str) -> Model:
        """The model under its new name (a DNS-1123 label), versions and aliases following."""
        return await self._registry.rename_model(team, name, names.check_model_name(new_name))

    async def update_description(self, team: str, name: str, description: str | None) -> Model:
        return await self._registry.update_model(
            team, name, description=description or "", tags=None
        )

    async def delete_model(self, team: str, name: str, principal: str) -> None:
        await self._registry.delete_model(team, name, principal)

    async def latest_versions(
        self, team: str, name: str, stages: Iterable[str]
    ) -> list[ModelVersion]:
        await self._registry.get_model(team, name)
        latest = entities.latest_version(await self.all_versions(team, name))
        return entities.latest_for_stages(stages, latest)

    async def set_model_tag(self, team: str, name: str, key: str, value: str) -> None:
        key, value = tags.check_tag(key, value)
        await self._retag_model(team, name, lambda current: tags.with_tag(current, key, value))

    async def delete_model_tag(self, team: str, name: str, key: str) -> None:
        await self._retag_model(team, name, lambda current: tags.without_tag(current, key))

    # -- aliases ----------------------------------------------------------------------

    async def set_alias(
        self, team: str, name: str, alias: str, version: str, principal: str
    ) -> None:
        await self._registry.set_alias(
            team, name, names.check_alias(alias), names.parse_version(version), principal
        )

    async def delete_alias(self, team: str, name: str, alias: str, principal: str) -> None:
        """As MLflow: deleting an alias that is not there is no error."""
        try:
            await self._registry.delete_alias(team, name, alias, principal)
        except AliasNotFound:
            return

    async def get_by_alias(self, team: str, name: str, alias: str) -> ModelVersion:
        found: tuple[Alias, ModelVersion] = await self._registry.get_alias(team, name, alias)
        return found[1]

    # -- model versions ---------------------------------------------------------------

    async def create_version(
        self,
        team: str,
        name: str,
        principal: str,
        *,
        source: str,
        run_id: str | None,
        run_link: str | None,
        description: str | None,
        tag_pairs: Iterable[tuple[str, str]],
        model_id: str | None = None,
    ) -> ModelVersion:
        """A new version: READY at once when it is a copy of another version
        (`models:/<name>/<version>`) or its sha256 and size were declared (and checked
        against the team's artifacts), else PENDING_REGISTRATION until the registration
        worker has read the source. Raises `SourceRefused`, `ArtifactRefused`,
        `ModelNotFound`, `MlflowError`."""
        new = entities.new_version(
            source=source,
            run_id=run_id,
            run_link=run_link,
            description=description,
            tags=tag_pairs,
            model_id=model_id,
        )
        parsed = registration.parse_source(source)
        if isinstance(parsed, registration.RegisteredVersion):
            return await self._copy(team, name, principal, parsed, new)
        lineage = new.lineage()
        needs_run = not lineage.attested and new.run_id is not None and self._tracking
        if new.artifact is not None and not needs_run:
            return await self._registry.register_version(
                team,
                name,
                framework=new.framework,
                artifact=new.artifact,
                lineage=lineage,
                registered_by=principal,
                tags=new.tags,
            )
        inputs: dict[str, Any] = {
            "given": new.given,
            "run_id": new.run_id,
            "run_link": new.run_link,
        }
        if new.artifact is not None:
            inputs["declared"] = {"size": new.artifact.size_bytes, "sha256": new.artifact.sha256}
        return await self._registry.register_pending_version(
            team,
            name,
            framework=new.framework,
            source=source,
            inputs=inputs,
            registered_by=principal,
            tags=new.tags,
        )

    async def _copy(
        self,
        team: str,
        name: str,
        principal: str,
        source: registration.RegisteredVersion,
        new: entities.NewVersion,
    ) -> ModelVersion:
        """`copy_model_version`: the artifact and lineage of another READY version of the team."""
        if source.alias is not None:
            original = await self.get_by_alias(team, source.name, source.alias)
        else:
            assert source.version is not None
            original = await self._registry.get_version(team, source.name, source.version)
        if original.registration != registration.READY:
            raise errors.MlflowError(
                errors.INVALID_STATE,
                f"Version {original.version} of '{original.model}' is not READY "
                f"({entities.MLFLOW_STATUS[original.registration]}): copy it once it is.",
            )
        return await self._registry.register_version(
            team,
            name,
            framework=original.framework,
            artifact=original.artifact,
            lineage=original.lineage,
            registered_by=principal,
            tags=new.tags,
            artifact_admitted=True,
        )

    async def get_version(self, team: str, name: str, version: str) -> ModelVersion:
        return await self._registry.get_version(team, name, names.parse_version(version))

    async def search_versions(
        self,
        team: str,
        filter_text: str | None,
        order_by: Sequence[str],
        max_results: int | None,
        page_token: str | None,
    ) -> tuple[list[ModelVersion], str | None]:
        """One page of the team's versions the filter selects, and the next page's token."""
        query = search.parse_filter(filter_text, versions=True)
        orderings = search.parse_order_by(order_by, versions=True)
        size = self._page_size(max_results)
        offset = paging.decode_offset(page_token)
        if query.prompts_only:
            return [], None
        versions = await self._registry.search_versions_by(
            team, query.comparisons, orderings, offset, size + 1
        )
        following = paging.encode_offset(offset + size) if len(versions) > size else None
        return versions[:size], following

    async def update_version_description(
        self, team: str, name: str, version: str, description: str | None
    ) -> ModelVersion:
        number = names.parse_version(version)
        current = await self._registry.get_version(team, name, number, for_update=True)
        changed = tags.with_description(current.tags, description)
        return await self._registry.update_version(team, name, number, tags=changed)

    async def delete_version(self, team: str, name: str, version: str, principal: str) -> None:
        await self._registry.delete_version(team, name, names.parse_version(version), principal)

    async def set_version_tag(
        self, team: str, name: str, version: str, key: str, value: str
    ) -> None:
        key, value = tags.check_tag(key, value)
        await self._retag_version(
            team, name, version, lambda current: tags.with_tag(current, key, value)
        )

    async def delete_version_tag(self, team: str, name: str, version: str, key: str) -> None:
        key = tags.check_tag_key_deletable(key)
        await self._retag_version(
            team, name, version, lambda current: tags.without_tag(current, key)
        )

    # -- helpers ----------------------------------------------------------------------

    async def all_versions(self, team: str, name: str) -> list[ModelVersion]:
        """Every version of the model, page by page."""
        found: list[ModelVersion] = []
        cursor: str | None = None
        while True:
            page = await self._registry.search_versions(
                team, VersionFilter(model=name), cursor, self._max_page_size
            )
            found.extend(page.versions)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def _page_size(self, max_results: int | None) -> int:
        return min(max_results or self._max_page_size, self._max_page_size)

    async def _retag_model(
        self, team: str, name: str, change: Callable[[dict[str, str]], dict[str, str]]
    ) -> None:
        # Locked: a concurrent tag change waits, then applies to what this one wrote.
        model = await self._registry.get_model(team, name, for_update=True)
        await self._registry.update_model(
            team, name, description=None, tags=change(dict(model.tags))
        )

    async def _retag_version(
        self,
        team: str,
        name: str,
        version: str,
        change: Callable[[dict[str, str]], dict[str, str]],
    ) -> None:
        number = names.parse_version(version)
        # Locked: a concurrent tag change waits, then applies to what this one wrote.
        current = await self._registry.get_version(team, name, number, for_update=True)
        await self._registry.update_version(team, name, number, tags=change(dict(current.tags)))
