"""`ReportStore` on the local disk (embedded mode): `file://` URIs under one root."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlplane_scanner.reports.store import ReportNotFound


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A reader never sees half a report: write aside, then rename over.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LocalDiskReportStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self.root / key
        await asyncio.to_thread(_write_atomically, path, data)
        return path.as_uri()

    async def get(self, uri: str) -> bytes:
        return await asyncio.to_thread(self._read, uri)

    def _read(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise ReportNotFound(f"report {uri} is not in the scanner's storage", uri=uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ReportNotFound(f"report {uri} does not exist", uri=uri) from None
