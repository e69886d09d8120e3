"""The builder's HTTP response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from mlplane_builder.domain import Build, BuildStatus


class LayerOut(BaseModel):
    digest: str
    size_bytes: int
    media_type: str


class BuildOut(BaseModel):
    id: int
    team: str
    model: str
    version: int
    framework: str
    status: BuildStatus
    attempts: int
    artifact_uri: str
    artifact_sha256: str
    artifact_size_bytes: int
    base_image: str | None
    image: str | None
    """`<repository>@<digest>` once built."""
    image_repository: str | None
    image_digest: str | None
    image_tag: str | None
    layers: list[LayerOut]
    image_size_bytes: int | None
    bytes_uploaded: int | None
    reused: bool
    """True when an identical image was already in the registry: nothing was uploaded."""
    error: str | None
    error_kind: str | None
    retryable: bool | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_try_at: datetime | None
    duration_s: float | None

    @classmethod
    def of(cls, build: Build) -> BuildOut:
        request = build.request
        image = (
            None
            if build.image_repository is None or build.image_digest is None
            else f"{build.image_repository}@{build.image_digest}"
        )
        return cls(
            id=build.id,
            team=request.team,
            model=request.model,
            version=request.version,
            framework=request.framework,
            status=build.status,
            attempts=build.attempts,
            artifact_uri=request.artifact_uri,
            artifact_sha256=request.artifact_sha256,
            artifact_size_bytes=request.artifact_size,
            base_image=build.base_image,
            image=image,
            image_repository=build.image_repository,
            image_digest=build.image_digest,
            image_tag=build.image_tag,
            layers=[
                LayerOut(digest=layer.digest, size_bytes=layer.size, media_type=layer.media_type)
                for layer in build.layers
            ],
            image_size_bytes=build.image_size,
            bytes_uploaded=build.bytes_uploaded,
            reused=build.reused,
            error=build.error,
            error_kind=build.error_kind,
            retryable=build.retryable,
            note=build.note,
            created_at=build.created_at,
            updated_at=build.updated_at,
            started_at=build.started_at,
            finished_at=build.finished_at,
            next_try_at=build.not_before if build.status is BuildStatus.PENDING else None,
            duration_s=build.duration_s,
        )


class BuildPage(BaseModel):
    builds: list[BuildOut]
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; null on the last page."""
