"""The object storage port: profiles and reports put under a key, read back by URI, and
datasets fetched from a team's locations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from mlplane_runtime.errors import NotFound

_SAFE = re.compile(r"[^A-Za-z0-9._=+@,-]")


class BlobNotFound(NotFound):
    pass


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store `data` under `key` (overwriting) and return its URI.

        Raises `Unavailable` when storage does not answer.
        """
        ...

    async def get(self, uri: str) -> bytes:
        """The bytes at `uri`. Raises `BlobNotFound` for a URI this store does not hold,
        `Unavailable` when storage does not answer."""
        ...

    async def download(self, uri: str, target: Path, max_bytes: int) -> int:
        """Stream the object at `uri` (`s3://bucket/key`) into `target`; its size.

        Raises `BlobNotFound` (no such object), `DatasetTooLarge` (past `max_bytes`,
        nothing kept), `DatasetsUnavailable` (no S3 configured), `Unavailable`.
        """
        ...


def safe(part: str) -> str:
    """`part` with every character a key should not hold replaced by '-'."""
    return _SAFE.sub("-", part)


def version_key(team: str, model: str, version: int, *rest: str) -> str:
    """`teams/<team>/models/<model>/versions/<version>/<rest...>`."""
    tail = "/".join(safe(part) for part in rest)
    return f"teams/{safe(team)}/models/{safe(model)}/versions/{version}/{tail}"
