"""The registry's HTTP request and response bodies.

Every string a request carries is refused with 422 when it holds a control
character (free text may hold tab, LF and CR), and every collection has a maximum:
at most `MAX_TAGS` tags per model or version, keys up to `MAX_TAG_KEY` and values
up to `MAX_TAG_VALUE` characters (MLflow's limits; the MLflow API shares them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from mlplane_contracts.events import ModelFramework
from mlplane_contracts.types import (
    ByteSize,
    Digest,
    DnsLabel,
    FreeText,
    GitCommitSha,
    MediaType,
    Metric,
    MetricKey,
    Name,
    NoControlCharacters,
    NoControlCharactersButWhitespace,
    ParamValue,
    PlainText,
    ResourceUri,
    Sha256Hex,
    WebUrl,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from mlplane_registry import domain

MAX_TAGS: Final = 100
"""Tags one model or one version may carry."""
MAX_TAG_KEY: Final = 250
MAX_TAG_VALUE: Final = 5000
MAX_DESCRIPTION: Final = 4096
MAX_DATASETS: Final = 100
MAX_PARAMS: Final = 1000
MAX_METRICS: Final = 1000
MAX_SIGNATURE_KEYS: Final = 100

TagValue = Annotated[
    str, StringConstraints(max_length=MAX_TAG_VALUE), NoControlCharactersButWhitespace
]
Tags = Annotated[dict[MetricKey, TagValue], Field(max_length=MAX_TAGS)]
SafeName = Annotated[Name, NoControlCharacters]
SafeParamValue = Annotated[ParamValue, NoControlCharactersButWhitespace]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(_Body):
    name: DnsLabel
    description: FreeText = Field(default="", max_length=MAX_DESCRIPTION)
    tags: Tags = Field(default_factory=dict)


class ModelUpdate(_Body):
    description: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION)
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
    name: SafeName
    uri: ResourceUri
    digest: Digest


class LineageIn(_Body):
    git_repository: WebUrl
    commit_sha: GitCommitSha
    ci_run_url: WebUrl
    git_ref: SafeName | None = None
    datasets: list[DatasetIn] = Field(default_factory=list, max_length=MAX_DATASETS)
    params: dict[MetricKey, SafeParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    metrics: dict[MetricKey, Metric] = Field(default_factory=dict, max_length=MAX_METRICS)

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


def _storable_json(value: Any) -> Any:
    """`value` when no string in it (key or value) holds NUL, which jsonb cannot store."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if "\x00" in current:
                raise ValueError("must not contain NUL (U+0000) in any string")
        elif isinstance(current, dict):
            pending += list(current.keys()) + list(current.values())
        elif isinstance(current, list):
            pending += current
    return value


Signature = Annotated[
    dict[str, Any], Field(max_length=MAX_SIGNATURE_KEYS), AfterValidator(_storable_json)
]


class VersionCreate(_Body):
    framework: ModelFramework
    artifact: ArtifactIn
    lineage: LineageIn
    signature: Signature | None = None
    """The model's input/output schema, as JSON."""
    tags: Tags = Field(default_factory=dict)
    status_message: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION)


class VersionUpdate(_Body):
    signature: Signature | None = None
    tags: Tags | None = None
    status_message: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION)


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
    registration: str = "ready"
    """`ready`; `pending` while the registry reads a version created from MLflow with only a
    source, `failed` when it could not (`status_message` says why): no artifact yet."""
    attested: bool = True
    """Whether the lineage names the repository, commit and CI run the version came from."""

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
            registration=version.registration,
            attested=version.lineage.attested,
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
    etag: PlainText = Field(min_length=1, max_length=128)


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
