"""The artifact storage port: presigned multipart uploads, verification, downloads.

CI uploads an artifact straight to storage: the registry calls `start_upload` with
the size and sha256 CI declares, hands the part URLs back, CI PUTs each part and
reports the ETag of each, and the registry calls `complete_upload`, which assembles
the object and checks that its size and sha256 are the declared ones (deleting it
when not). Adapters: `S3ArtifactStore` (S3, MinIO, SeaweedFS) and
`LocalDiskArtifactStore` (the embedded mode).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mlplane_registry.artifacts.errors import InvalidUpload

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MIB
# S3's limits: every part but the last is at least 5 MiB, at most 5 GiB, 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_UPLOAD_EXPIRES_S = 3600
# An upload not completed within this is refused and swept away (parts and all).
DEFAULT_UPLOAD_EXPIRY_S = 24 * 3600
DEFAULT_DOWNLOAD_EXPIRES_S = 900
# Verification reads the object in chunks of this size: memory stays constant.
HASH_CHUNK_SIZE = 1 * MIB

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._=+@,-]+$")


@dataclass(frozen=True, slots=True)
class PartUpload:
    """One part to PUT: its number (from 1), its URL and how many bytes it carries."""

    number: int
    url: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """A started multipart upload: what was declared and where each part goes.

    `upload_id` is opaque and is all `complete_upload` needs: adapters keep the key
    and the declared size and sha256 with the upload itself.
    """

    upload_id: str
    key: str
    size: int
    sha256: str
    part_size: int
    parts: tuple[PartUpload, ...]
    expires_s: int


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """A stored, verified artifact."""

    key: str
    uri: str
    size: int
    sha256: str


PartETags = Sequence[tuple[int, str]]


@runtime_checkable
class ArtifactStore(Protocol):
    """Where model artifacts live. Every method runs in constant memory."""

    async def start_upload(
        self,
        key: str,
        size: int,
        sha256: str,
        part_size: int = DEFAULT_PART_SIZE,
        expires_s: int = DEFAULT_UPLOAD_EXPIRES_S,
    ) -> UploadPlan:
        """Start a multipart upload of `size` bytes; one presigned PUT URL per part.

        Raises `InvalidUpload` for a bad key, a negative size, a sha256 that is not
        64 hex digits, or a part size outside S3's limits (or needing > 10,000 parts).
        """
        ...

    async def complete_upload(self, upload: UploadPlan | str, parts: PartETags) -> ArtifactInfo:
        """Assemble the parts (number, ETag) and verify size and sha256.

        Raises `ArtifactMismatch` naming the declared and the actual value when the
        object differs from the declaration (the object is deleted first),
        `InvalidUpload` for missing parts or wrong ETags, `UploadNotFound` for an
        unknown upload id, `UploadExpired` (the upload is dropped) for one started
        longer ago than the store's upload expiry. Completing an already completed
        upload verifies and returns the stored object again.
        """
        ...

    async def upload_key(self, upload_id: str) -> str:
        """The key an upload writes to, without touching the upload (to check who owns
        it before completing). Raises `UploadNotFound` for an unknown upload id."""
        ...

    async def abort_upload(self, upload: UploadPlan | str) -> None:
        """Drop an unfinished upload and its parts; unknown ids are ignored."""
        ...

    async def sweep_expired_uploads(self) -> int:
        """Drop every upload started longer ago than the store's upload expiry, with its
        parts (S3: abort the multipart upload); how many were dropped."""
        ...

    async def download_url(self, key: str, expires_s: int = DEFAULT_DOWNLOAD_EXPIRES_S) -> str:
        """A URL that GETs the artifact's bytes until `expires_s` seconds from now.

        Raises `ArtifactNotFound` when nothing is stored under `key`.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete the artifact under `key`; deleting a missing key is not an error."""
        ...


def validate_key(key: str) -> str:
    """`key` if it is a relative path of safe segments (no `..`, no empty segment)."""
    segments = key.split("/")
    if (
        not key
        or len(key) > 1024
        # No segment starts with '.': '.', '..' and the stores' hidden working files.
        or any(s == "" or s.startswith(".") or not _KEY_SEGMENT.match(s) for s in segments)
    ):
        raise InvalidUpload(
            f"artifact key {key!r} must be '/'-separated segments of letters, digits "
            "and ._=+@,- (none empty or starting with '.'), at most 1024 characters",
            field="key",
        )
    return key


def plan_parts(key: str, size: int, sha256: str, part_size: int) -> tuple[str, list[int]]:
    """Validate a declared upload; the normalized sha256 and each part's size."""
    validate_key(key)
    digest = sha256.lower()
    if not _SHA256.match(digest):
        raise InvalidUpload(f"sha256 {sha256!r} is not 64 hex digits", field="sha256")
    if size < 0:
        raise InvalidUpload(f"size {size} is negative", field="size")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise InvalidUpload(
            f"part_size {part_size} is outside [{MIN_PART_SIZE}, {MAX_PART_SIZE}]",
            field="part_size",
        )
    count = max(1, -(-size // part_size))
    if count > MAX_PARTS:
        needed = -(-size // MAX_PARTS)
        raise InvalidUpload(
            f"size {size} needs {count} parts of {part_size} bytes, more than {MAX_PARTS}; "
            f"use part_size >= {needed}",
            field="part_size",
        )
    sizes = [part_size] * (count - 1) + [size - part_size * (count - 1)]
    return digest, sizes


def normalize_etag(etag: str) -> str:
    """An ETag without quotes, as S3 compares them."""
    return etag.strip().strip('"')
