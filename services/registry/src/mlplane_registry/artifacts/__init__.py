"""Artifact storage: the `ArtifactStore` port and its S3 and local-disk adapters."""

from mlplane_registry.artifacts.errors import (
    ArtifactMismatch,
    ArtifactNotFound,
    InvalidUpload,
    UploadNotFound,
)
from mlplane_registry.artifacts.store import (
    DEFAULT_PART_SIZE,
    ArtifactInfo,
    ArtifactStore,
    PartUpload,
    UploadPlan,
)

__all__ = [
    "DEFAULT_PART_SIZE",
    "ArtifactInfo",
    "ArtifactMismatch",
    "ArtifactNotFound",
    "ArtifactStore",
    "InvalidUpload",
    "PartUpload",
    "UploadNotFound",
    "UploadPlan",
]
