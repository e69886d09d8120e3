"""A build of one model version's image: what it is asked to build, and its life.

`pending → running → succeeded | failed`. A running build that fails in a way worth
retrying goes back to `pending` with a `not_before` time until its tries run out; a
succeeded or failed build goes back to `pending` only when someone asks to rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE
from mlplane_contracts.subjects import version_subject
from mlplane_runtime.errors import Conflict

from mlplane_builder.domain.failures import BuildFailure


class BuildStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = frozenset({BuildStatus.SUCCEEDED, BuildStatus.FAILED})


class BuildNotRebuildable(Conflict):
    """A rebuild asked of a build that is still pending or running."""


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """Everything a build needs, taken from `model.version.registered` once."""

    team: str
    model: str
    version: int
    framework: str
    artifact_uri: str
    artifact_sha256: str
    artifact_size: int
    git_repository: str
    commit_sha: str
    ci_run_url: str
    registered_at: datetime
    artifact_media_type: str | None = None

    @property
    def artifact_is_directory(self) -> bool:
        """Whether the artifact is a directory (an MLflow model) the registry verified as
        one: its files go into the image below the model's path."""
        return self.artifact_media_type == ARTIFACT_TREE_MEDIA_TYPE

    @property
    def subject(self) -> str:
        """The CloudEvent subject of this version's image events."""
        return version_subject(self.team, self.model, self.version)


@dataclass(frozen=True, slots=True)
class BuiltLayerInfo:
    """One layer of a built image, as `image.built` reports it."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What a successful build produced."""

    repository: str
    """Full repository with the registry host (`harbor.example.com/ml/fraud`), or the
    layout's name in embedded mode."""
    digest: str
    tag: str
    base_image: str | None
    """The base by digest (`repo@sha256:..`), None for a scratch base."""
    layers: tuple[BuiltLayerInfo, ...]
    bytes_uploaded: int
    """Bytes the builder sent (0 for a rebuild of an image already there)."""
    reused: bool = False
    """True when an identical image was already in the target and nothing was pushed."""

    @property
    def image_size(self) -> int:
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class Build:
    """The build record of one model version (one per team/model/version)."""

    id: int
    request: BuildRequest
    status: BuildStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    base_image: str | None = None
    image_repository: str | None = None
    image_digest: str | None = None
    image_tag: str | None = None
    layers: tuple[BuiltLayerInfo, ...] = field(default=())
    bytes_uploaded: int | None = None
    image_size: int | None = None
    reused: bool = False
    error: str | None = None
    error_kind: str | None = None
    retryable: bool | None = None
    note: str | None = None
    """A remark for people (e.g. "no base image configured: scratch base")."""
    traceparent: str | None = None
    tracestate: str | None = None
    """The W3C trace context of what asked for the build: its run continues that trace."""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def succeeded(self, outcome: BuildOutcome, now: datetime, note: str | None) -> Build:
        """This build finished with `outcome`."""
        return replace(
            self,
            status=BuildStatus.SUCCEEDED,
            finished_at=now,
            updated_at=now,
            not_before=None,
            lease_owner=None,
            lease_expires_at=None,
            base_image=outcome.base_image,
            image_repository=outcome.repository,
            image_digest=outcome.digest,
            image_tag=outcome.tag,
            layers=outcome.layers,
            bytes_uploaded=outcome.bytes_uploaded,
            image_size=outcome.image_size,
            reused=outcome.reused,
            error=None,
            error_kind=None,
            retryable=None,
            note=note,
        )

    def failed(
        self, failure: BuildFailure, now: datetime, *, max_attempts: int, retry_delay_s: float
    ) -> Build:
        """This try failed with `failure`: pending again (after a back-off) while a
        retryable failure has tries left, else failed for good."""
        if failure.can_retry and self.attempts < max_attempts:
            delay = retry_delay_s * 2 ** max(0, self.attempts - 1)
            status, finished_at = BuildStatus.PENDING, None
            not_before: datetime | None = now + timedelta(seconds=delay)
        else:
            status, finished_at, not_before = BuildStatus.FAILED, now, None
        return replace(
            self,
            status=status,
            finished_at=finished_at,
            not_before=not_before,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            error=failure.detail,
            error_kind=failure.kind.value,
            retryable=failure.can_retry,
        )

    def rebuild(
        self, now: datetime, traceparent: str | None = None, tracestate: str | None = None
    ) -> Build:
        """Pending again, tries counted from zero, in the trace of whoever asked (given).
        Raises BuildNotRebuildable unless finished."""
        if self.status not in FINISHED:
            raise BuildNotRebuildable(
                f"build {self.id} is {self.status.value}; only a finished build can be rebuilt",
                status=self.status.value,
            )
        return replace(
            self,
            status=BuildStatus.PENDING,
            attempts=0,
            updated_at=now,
            not_before=None,
            finished_at=None,
            traceparent=traceparent,
            tracestate=tracestate,
        )
