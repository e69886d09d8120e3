"""Reading an artifact where it lies, in constant memory, to its size and sha256.

A location is a single file or a directory (an MLflow model is a directory: MLmodel,
the model's files, its environment). Files are streamed chunk by chunk into the hash;
a directory's digest is that of its manifest (`mlplane_contracts.artifacts.tree_digest`,
which the builder checks again).
Failures are `ReadFailed`: `retryable` when storage or the tracking server did not
answer (another try may work), final with a message a person can act on otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE, tree_digest
from mlplane_runtime.s3 import MISSING_CODES, error_code

from mlplane_registry.registration.tracking import (
    TrackingRefused,
    TrackingServer,
    TrackingUnavailable,
)

CHUNK_SIZE = 1024 * 1024
TRACKING_PREFIX = "mlflow-artifacts:/"


class ReadFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    media_type: str | None
    files: int


async def _hash(chunks: AsyncIterator[bytes]) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return size, hasher.hexdigest()


class ArtifactReader:
    """Reads `s3://` locations with `s3_client` (the registry's, None: not configured) and
    `mlflow-artifacts:/` ones from `tracking` (None: no tracking server configured)."""

    def __init__(
        self,
        s3_client: Callable[[], Any] | None,
        tracking: TrackingServer | None,
        max_files: int,
    ) -> None:
        self._s3_client = s3_client
        self._tracking = tracking
        self._max_files = max_files

    async def digest(self, uri: str) -> Digest:
        """Size and sha256 of the file or directory at `uri`. Raises `ReadFailed`."""
        if uri.startswith(TRACKING_PREFIX):
            return await self._tracking_digest(uri.removeprefix(TRACKING_PREFIX).strip("/"))
        if uri.startswith("s3://"):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            return await self._s3_digest(bucket, key.rstrip("/"), uri)
        raise ReadFailed(f"the registry cannot read {uri}", retryable=False)

    # -- the tracking server's artifact proxy --------------------------------------------

    async def _tracking_digest(self, path: str) -> Digest:
        tracking = self._tracking
        if tracking is None:
            raise ReadFailed(
                f"{TRACKING_PREFIX}{path} is on an MLflow tracking server, and this registry "
                "has none configured (MLPLANE_REGISTRY_MLFLOW_TRACKING_URI)",
                retryable=False,
            )
        try:
            files: list[tuple[str, int, str]] = []
            pending = [""]
            while pending:
                below = pending.pop()
                listed = await tracking.list(f"{path}/{below}".rstrip("/"))
                if not listed and below == "":
                    size, sha256 = await _hash(tracking.chunks(path))
                    return Digest(size, sha256, None, 1)
                for entry in listed:
                    relative = f"{below}/{entry.name}".lstrip("/")
                    if entry.is_dir:
                        pending.append(relative)
                        continue
                    if len(files) >= self._max_files:
                        raise ReadFailed(
                            f"{TRACKING_PREFIX}{path} holds more than {self._max_files} files "
                            "(MLPLANE_REGISTRY_MLFLOW_REGISTRATION_MAX_FILES)",
                            retryable=False,
                        )
                    size, sha256 = await _hash(tracking.chunks(f"{path}/{relative}"))
                    files.append((relative, size, sha256))
        except TrackingUnavailable as exc:
            raise ReadFailed(str(exc), retryable=True) from exc
        except TrackingRefused as exc:
            raise ReadFailed(
                f"cannot read {TRACKING_PREFIX}{path} from the tracking server: {exc}",
                retryable=False,
            ) from exc
        total, sha256 = tree_digest(files)
        return Digest(total, sha256, ARTIFACT_TREE_MEDIA_TYPE, len(files))

    # -- S3 -----------------------------------------------------------------------------

    async def _s3_digest(self, bucket: str, key: str, uri: str) -> Digest:
        if self._s3_client is None:
            raise ReadFailed(
                f"{uri} is in S3, and this registry has no S3 endpoint configured "
                "(MLPLANE_REGISTRY_S3_ENDPOINT_URL)",
                retryable=False,
            )
        s3 = self._s3_client()
        try:
            try:
                await s3.head_object(Bucket=bucket, Key=key)
                size, sha256 = await self._s3_file(s3, bucket, key)
                return Digest(size, sha256, None, 1)
            except ClientError as exc:
                if error_code(exc) not in MISSING_CODES:
                    raise
            files: list[tuple[str, int, str]] = []
            prefix = f"{key}/"
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            async for page in pages:
                for item in page.get("Contents", []):
                    if len(files) >= self._max_files:
                        raise ReadFailed(
                            f"{uri} holds more than {self._max_files} files "
                            "(MLPLANE_REGISTRY_MLFLOW_REGISTRATION_MAX_FILES)",
                            retryable=False,
                        )
                    size, sha256 = await self._s3_file(s3, bucket, item["Key"])
                    files.append((item["Key"].removeprefix(prefix), size, sha256))
        except BotoCoreError as exc:
            raise ReadFailed(
                f"object storage did not answer reading {uri}", retryable=True
            ) from exc
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if isinstance(status, int) and status >= 500:
                raise ReadFailed(f"object storage failed reading {uri}", retryable=True) from exc
            raise ReadFailed(
                f"cannot read {uri}: {error_code(exc) or status} (does the registry's S3 "
                "identity have read access to that bucket?)",
                retryable=False,
            ) from exc
        if not files:
            raise ReadFailed(f"nothing is stored at {uri}", retryable=False)
        total, sha256 = tree_digest(files)
        return Digest(total, sha256, ARTIFACT_TREE_MEDIA_TYPE, len(files))

    @staticmethod
    async def _s3_file(s3: Any, bucket: str, key: str) -> tuple[int, str]:
        got = await s3.get_object(Bucket=bucket, Key=key)
        body = got["Body"]
        hasher = hashlib.sha256()
        size = 0
        async with body:  # releases the connection, even when hashing fails
            async for chunk in body.iter_chunks(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        return size, hasher.hexdigest()
