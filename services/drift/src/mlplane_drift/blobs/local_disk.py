"""`BlobStore` on the local disk (embedded mode): `file://` URIs under one root.

There is no object storage to read datasets from here: `download` refuses.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlplane_drift.blobs.store import BlobNotFound
from mlplane_drift.domain.errors import DatasetsUnavailable


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A reader never sees half an object: write aside, then rename over.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LocalDiskBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self.root / key
        await asyncio.to_thread(_write_atomically, path, data)
        return path.as_uri()

    async def get(self, uri: str) -> bytes:
        return await asyncio.to_thread(self._read, uri)

    async def download(self, uri: str, target: Path, max_bytes: int) -> int:
        raise DatasetsUnavailable(
            f"cannot read {uri}: no object storage is configured "
            "(set MLPLANE_DRIFT_S3_ENDPOINT_URL, or upload the dataset in the request body)",
            uri=uri,
        )

    def _read(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise BlobNotFound(f"{uri} is not in the drift service's storage", uri=uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"{uri} does not exist", uri=uri) from None
