"""The registry's entities as MLflow's messages, and MLflow's create request as a version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlplane_contracts.events import ModelFramework
from mlplane_contracts.types import (
    GIT_COMMIT_PATTERN,
    SHA256_HEX_PATTERN,
    WEB_URL_PATTERN,
)

from mlplane_registry.domain import Artifact, Lineage, Model, ModelVersion
from mlplane_registry.domain.registration import FAILED, PENDING, READY, lineage_of
from mlplane_registry.mlflow.errors import MlflowError, invalid
from mlplane_registry.mlflow.tags import (
    CI_RUN_URL_TAG,
    COMMIT_TAG,
    DESCRIPTION_TAG,
    FRAMEWORK_TAG,
    GIT_REF_TAG,
    GIT_REPOSITORY_TAG,
    INPUT_TAGS,
    MEDIA_TYPE_TAG,
    MODEL_ID_TAG,
    RUN_ID_TAG,
    SHA256_TAG,
    SIZE_TAG,
    SOURCE_TAG,
    check_tag,
    tags_json,
)
from mlplane_registry.schemas import MAX_TAG_VALUE

MLFLOW_STATUS = {
    READY: "READY",
    PENDING: "PENDING_REGISTRATION",
    FAILED: "FAILED_REGISTRATION",
}


def timestamp_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """A version as MLflow's `ModelVersion` message."""
    return {
        "name": version.model,
        "version": str(version.version),
        "creation_timestamp": timestamp_ms(version.created_at),
        "last_updated_timestamp": timestamp_ms(version.updated_at),
        "user_id": version.registered_by,
        "current_stage": "None",
        "description": version.tags.get(DESCRIPTION_TAG, ""),
        "source": version.tags.get(SOURCE_TAG) or version.artifact.uri,
        "run_id": version.tags.get(RUN_ID_TAG, ""),
        "model_id": version.tags.get(MODEL_ID_TAG, ""),
        "run_link": version.lineage.ci_run_url,
        "status": MLFLOW_STATUS.get(version.registration, "READY"),
        "status_message": version.status_message or "",
        "tags": tags_json(version.tags),
        "aliases": sorted(version.aliases),
    }


def registered_model_json(
    model: Model, versions: Iterable[ModelVersion] | None = None
) -> dict[str, Any]:
    """A model as MLflow's `RegisteredModel` message.

    With `versions` (all of the model's), it carries its aliases and latest version
    too, as MLflow's `get` does; without, as `search` here does, it does not.
    """
    body: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": timestamp_ms(model.created_at),
        "last_updated_timestamp": timestamp_ms(model.updated_at),
        "description": model.description,
        "tags": tags_json(model.tags),
    }
    if versions is not None:
        every = list(versions)
        body["aliases"] = [
            {"alias": alias, "version": str(v.version)}
            for v in every
            for alias in sorted(v.aliases)
        ]
        latest = latest_version(every)
        body["latest_versions"] = [] if latest is None else [model_version_json(latest)]
    return body


def latest_version(versions: Iterable[ModelVersion]) -> ModelVersion | None:
    return max(versions, key=lambda v: v.version, default=None)


NONE_STAGE = "none"
KNOWN_STAGES = frozenset({"none", "staging", "production", "archived"})


def latest_for_stages(stages: Iterable[str], latest: ModelVersion | None) -> list[ModelVersion]:
    """`get-latest-versions`: every version is in stage None, so only that stage has one."""
    wanted = {s.lower() for s in stages}
    unknown = sorted(wanted - KNOWN_STAGES)
    if unknown:
        raise invalid(
            f"Invalid Model Version stage: {', '.join(unknown)}. "
            "Value must be one of None, Staging, Production, Archived."
        )
    if latest is None or (wanted and NONE_STAGE not in wanted):
        return []
    return [latest]


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What `model-versions/create` asks for, in the domain's terms.

    `artifact` is set when the caller declared the artifact's sha256 and size (the
    `mlplane.*` tags): the version can be registered at once. Otherwise the registry
    reads the source itself (`registration.parse_source`).
    """

    source: str
    framework: str
    artifact: Artifact | None
    given: dict[str, str]
    """The caller's `mlplane.*` input tags (lineage, media type)."""
    run_id: str | None
    run_link: str | None
    tags: dict[str, str]
    """The version's tags as stored: the user's, its description, run id and source."""

    def lineage(self) -> Lineage:
        """The lineage the caller's tags and run link name (parts unknown stay empty)."""
        return lineage_of(
            self.given,
            self.run_link,
            None,
            repository_tag=GIT_REPOSITORY_TAG,
            commit_tag=COMMIT_TAG,
            ci_run_tag=CI_RUN_URL_TAG,
            ref_tag=GIT_REF_TAG,
        )


def new_version(
    *,
    source: str,
    run_id: str | None,
    run_link: str | None,
    description: str | None,
    tags: Iterable[tuple[str, str]],
    model_id: str | None = None,
) -> NewVersion:
    """The version MLflow's create request describes; INVALID_PARAMETER_VALUE naming
    every malformed field.

    The `mlplane.*` tags are optional: the artifact's sha256 and size (both or
    neither), the framework, media type, git repository, commit, ref and CI run.
    """
    given: dict[str, str] = {}
    stored: dict[str, str] = {}
    problems: list[str] = []
    for key, value in tags:
        if key in INPUT_TAGS:
            given[key] = value
            continue
        try:
            check_tag(key, value)
        except MlflowError as exc:
            problems.append(exc.message)
            continue
        stored[key] = value

    if not source:
        problems.append("Missing value for required parameter 'source'.")

    def optional(key: str, pattern: str, what: str) -> str | None:
        value = given.get(key)
        if value and re.fullmatch(pattern.strip("^$"), value) is None:
            problems.append(f"Tag '{key}' = '{value}' is not {what}.")
            return None
        return value or None

    sha256 = optional(SHA256_TAG, SHA256_HEX_PATTERN, "the artifact's sha256 (64 lowercase hex)")
    size = optional(SIZE_TAG, r"[0-9]{1,18}", "the artifact's size in bytes")
    if (sha256 is None) != (size is None) and not problems:
        problems.append(
            f"Tags '{SHA256_TAG}' and '{SIZE_TAG}' go together: give both (the registry then "
            "checks them) or neither (the registry reads the artifact and computes them)."
        )
    optional(GIT_REPOSITORY_TAG, WEB_URL_PATTERN, "the git repository's https URL")
    optional(COMMIT_TAG, GIT_COMMIT_PATTERN, "the full git commit sha (40 or 64 hex)")
    optional(CI_RUN_URL_TAG, WEB_URL_PATTERN, "the CI run's https URL")
    if run_link and re.fullmatch(WEB_URL_PATTERN.strip("^$"), run_link) is None:
        run_link = None  # MLflow's run_link is free text; only a URL is lineage
    framework = given.get(FRAMEWORK_TAG, ModelFramework.CUSTOM.value)
    if framework not in {f.value for f in ModelFramework}:
        problems.append(
            f"Tag '{FRAMEWORK_TAG}' = '{framework}' is not one of "
            f"{', '.join(f.value for f in ModelFramework)}."
        )
    media_type = given.get(MEDIA_TYPE_TAG) or None
    if description and len(description) > MAX_TAG_VALUE:
        problems.append(f"description is longer than {MAX_TAG_VALUE} characters.")
    if model_id and len(model_id) > 256:
        problems.append("model_id is longer than 256 characters.")
    if run_id and len(run_id) > 256:
        problems.append("run_id is longer than 256 characters.")
    if problems:
        raise invalid("Cannot register this model version in mlplane: " + " ".join(problems))
    if description:
        stored[DESCRIPTION_TAG] = description
    if run_id:
        stored[RUN_ID_TAG] = run_id
    if model_id:
        stored[MODEL_ID_TAG] = model_id
    stored[SOURCE_TAG] = source
    artifact = None
    if sha256 is not None and size is not None:
        artifact = Artifact(source, int(size), sha256, media_type)
    return NewVersion(
        source=source,
        framework=framework,
        artifact=artifact,
        given=given,
        run_id=run_id or None,
        run_link=run_link or None,
        tags=stored,
    )
