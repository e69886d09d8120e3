"""The registry's entities: models, their versions (with lineage and artifact), aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlplane_contracts.subjects import version_subject

from mlplane_registry.domain.lifecycle import Lifecycle, VersionStage

# -- entities -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatasetRef:
    name: str
    uri: str
    digest: str


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from: code, CI run, data, parameters and results."""

    git_repository: str
    commit_sha: str
    ci_run_url: str
    git_ref: str | None = None
    datasets: tuple[DatasetRef, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def attested(self) -> bool:
        """Whether it names the repository, commit and CI run (empty strings: unknown)."""
        return bool(self.git_repository and self.commit_sha and self.ci_run_url)


@dataclass(frozen=True, slots=True)
class Artifact:
    uri: str
    size_bytes: int
    sha256: str
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class Model:
    id: int
    team: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    etag: str


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: int
    model_id: int
    team: str
    model: str
    version: int
    framework: str
    artifact: Artifact
    lineage: Lineage
    signature: dict[str, Any] | None
    tags: dict[str, str]
    status_message: str | None
    lifecycle: Lifecycle
    aliases: tuple[str, ...]
    registered_by: str
    created_at: datetime
    updated_at: datetime
    etag: str
    registration: str = "ready"
    """`ready`, or `pending` / `failed` while (or when) the registry could not verify
    the artifact of a version created with only a source (`domain.registration`)."""

    @property
    def stage(self) -> VersionStage:
        return self.lifecycle.stage

    @property
    def subject(self) -> str:
        return version_subject(self.team, self.model, self.version)


@dataclass(frozen=True, slots=True)
class Alias:
    team: str
    model: str
    alias: str
    version: int
    etag: str
    updated_at: datetime
