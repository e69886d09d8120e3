"""The registry's HTTP request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlplane_contracts.events import ModelFramework
from mlplane_contracts.types import (
    ByteSize,
    Digest,
    DnsLabel,
    GitCommitSha,
    MediaType,
    Metric,
    MetricKey,
    Name,
    ParamValue,
    ResourceUri,
    Sha256Hex,
    WebUrl,
)
from pydantic import BaseModel, ConfigDict, Field

from mlplane_registry import domain

Tags = dict[MetricKey, ParamValue]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(_Body):
    name: DnsLabel
    description: str = Field(default="", max_length=4096)
    tags: Tags = Field(default_factory=dict)


class ModelUpdate(_Body):
    description: str | None = Field(default=None, max_length=4096)
    tags: Tags | None = None


class ModelOut(BaseModel):
    team: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, model: domain.Model) -> ModelOut:
        return cls(
            team=model.team,
            name=model.name,
            description=model.description,
            tags=model.tags,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


class ModelList(BaseModel):
    models: list[ModelOut]


class ArtifactIn(_Body):
    uri: ResourceUri
    size_bytes: ByteSize
    sha256: Sha256Hex
    media_type: MediaType | None = None


class DatasetIn(_Body):
    name: Name
    uri: ResourceUri
    digest: Digest


class LineageIn(_Body):
    git_repository: WebUrl
    commit_sha: GitCommitSha
    ci_run_url: WebUrl
    git_ref: Name | None = None
    datasets: list[DatasetIn] = Field(default_factory=list)
    params: dict[MetricKey, ParamValue] = Field(default_factory=dict)
    metrics: dict[MetricKey, Metric] = Field(default_factory=dict)

    def to_domain(self) -> domain.Lineage:
        return domain.Lineage(
            git_repository=self.git_repository,
            commit_sha=self.commit_sha,
            ci_run_url=self.ci_run_url,
            git_ref=self.git_ref,
            datasets=tuple(domain.DatasetRef(d.name, d.uri, d.digest) for d in self.datasets),
            params=dict(self.params),
            metrics=dict(self.metrics),
        )


class VersionCreate(_Body):
    framework: ModelFramework
    artifact: ArtifactIn
    lineage: LineageIn
    signature: dict[str, Any] | None = None
    """The model's input/output schema, as JSON."""
    tags: Tags = Field(default_factory=dict)
    status_message: str | None = Field(default=None, max_length=4096)


class VersionUpdate(_Body):
    signature: dict[str, Any] | None = None
    tags: Tags | None = None
    status_message: str | None = Field(default=None, max_length=4096)


class LifecycleOut(BaseModel):
    stage: str
    scan_verdict: str | None
    deployed_environments: list[str]
    image: str | None
    build_failure: str | None
    deployments: dict[str, str]


class VersionOut(BaseModel):
    team: str
    model: str
    version: int
    framework: str
    artifact: dict[str, Any]
    lineage: dict[str, Any]
    signature: dict[str, Any] | None
    tags: dict[str, str]
    status_message: str | None
    aliases: list[str]
    lifecycle: LifecycleOut
    registered_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, version: domain.ModelVersion) -> VersionOut:
        lineage = version.lineage
        lc = version.lifecycle
        build = lc.build
        return cls(
            team=version.team,
            model=version.model,
            version=version.version,
            framework=version.framework,
            artifact={
                "uri": version.artifact.uri,
                "size_bytes": version.artifact.size_bytes,
                "sha256": version.artifact.sha256,
                "media_type": version.artifact.media_type,
            },
            lineage={
                "git_repository": lineage.git_repository,
                "commit_sha": lineage.commit_sha,
                "ci_run_url": lineage.ci_run_url,
                "git_ref": lineage.git_ref,
                "datasets": [
                    {"name": d.name, "uri": d.uri, "digest": d.digest} for d in lineage.datasets
                ],
                "params": lineage.params,
                "metrics": lineage.metrics,
            },
            signature=version.signature,
            tags=version.tags,
            status_message=version.status_message,
            aliases=list(version.aliases),
            lifecycle=LifecycleOut(
                stage=lc.stage.value,
                scan_verdict=lc.scan_verdict,
                deployed_environments=list(lc.deployed_environments),
                image=(build.image if build is not None else None)
                or (lc.scan.image if lc.scan is not None else None),
                build_failure=build.reason if build is not None else None,
                deployments={env: fact.phase for env, fact in sorted(lc.deployments.items())},
            ),
            registered_by=version.registered_by,
            created_at=version.created_at,
            updated_at=version.updated_at,
        )


class VersionPageOut(BaseModel):
    versions: list[VersionOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class AliasSet(_Body):
    version: int = Field(ge=1, le=2**31 - 1)


class AliasOut(BaseModel):
    team: str
    model: str
    alias: str
    version: int

    @classmethod
    def of(cls, alias: domain.Alias) -> AliasOut:
        return cls(team=alias.team, model=alias.model, alias=alias.alias, version=alias.version)


class AliasedVersionOut(BaseModel):
    alias: AliasOut
    version: VersionOut


# -- artifact uploads -------------------------------------------------------------------


class UploadStart(_Body):
    size_bytes: ByteSize
    sha256: Sha256Hex
    filename: str = Field(
        default="artifact",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_=+@,-][A-Za-z0-9._=+@,-]*$",
    )
    """The object's last key segment, e.g. `model.onnx`."""
    part_size: int | None = Field(default=None, gt=0)
    """Bytes per part; unset: the registry's `MLPLANE_REGISTRY_UPLOAD_PART_SIZE`."""


class UploadPartOut(BaseModel):
    number: int
    url: str
    size_bytes: int


class UploadPlanOut(BaseModel):
    upload_id: str
    key: str
    size_bytes: int
    sha256: str
    part_size: int
    expires_s: int
    parts: list[UploadPartOut]
    """PUT each part's bytes to its URL, keep the `ETag` response header of each."""


class UploadedPart(_Body):
    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class UploadComplete(_Body):
    parts: list[UploadedPart] = Field(min_length=1, max_length=10_000)


class ArtifactOut(BaseModel):
    """A verified artifact: pass `uri`, `size_bytes` and `sha256` as a version's artifact."""

    key: str
    uri: str
    size_bytes: int
    sha256: str


class DownloadOut(BaseModel):
    url: str
    expires_s: int
    size_bytes: int
    sha256: str
