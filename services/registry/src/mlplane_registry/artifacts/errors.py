"""Errors of artifact storage, each an `MlplaneError` rendered as problem+json."""

from __future__ import annotations

from typing import ClassVar

from mlplane_runtime.errors import PROBLEM_BASE_URI, Conflict, InvalidInput, MlplaneError, NotFound


class ArtifactMismatch(Conflict):
    """What landed in storage is not what the uploader declared; the object is deleted."""

    problem_type = "https://mlplane.io/problems/artifact-mismatch"
    title = "Artifact does not match its declaration"

    def __init__(self, key: str, field: str, declared: str | int, actual: str | int) -> None:
        super().__init__(
            f"artifact {key!r}: declared {field} {declared} but the uploaded object has "
            f"{field} {actual}; the object was deleted, upload it again",
            key=key,
            field=field,
            declared=declared,
            actual=actual,
        )


class InvalidUpload(InvalidInput):
    """A bad key, size, sha256, part size or part list."""


class UploadNotFound(NotFound):
    """No multipart upload with this id (never started, aborted, or expired)."""


class ArtifactNotFound(NotFound):
    """No stored artifact under this key."""


class UploadExpired(MlplaneError):
    """An upload not completed in time (`MLPLANE_REGISTRY_UPLOAD_EXPIRY_S`); it is dropped."""

    status: ClassVar[int] = 410
    problem_type: ClassVar[str] = f"{PROBLEM_BASE_URI}/upload-expired"
    title: ClassVar[str] = "Upload expired"
    retryable: ClassVar[bool] = False


class PartTooLarge(MlplaneError):
    """A part PUT carrying more bytes than the upload plan gave that part."""

    status: ClassVar[int] = 413
    problem_type: ClassVar[str] = f"{PROBLEM_BASE_URI}/part-too-large"
    title: ClassVar[str] = "Part too large"
    retryable: ClassVar[bool] = False
