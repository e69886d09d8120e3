"""The report storage port: put bytes under a key, get a URI back; read them by URI."""

from __future__ import annotations

import re
from typing import Protocol

from mlplane_runtime.errors import NotFound

CYCLONEDX = "application/vnd.cyclonedx+json"
"""The media type SBOMs are stored and served with."""

_SAFE = re.compile(r"[^A-Za-z0-9._=+@,-]")


class ReportNotFound(NotFound):
    pass


class ReportStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store `data` under `key` (overwriting: keys name content) and return its URI.

        Raises `Unavailable` when storage does not answer.
        """
        ...

    async def get(self, uri: str) -> bytes:
        """The bytes at `uri`. Raises `ReportNotFound` for a URI this store does not hold."""
        ...


def report_key(team: str, digest: str, db_label: str | None, name: str) -> str:
    """`teams/<team>/images/<hex>/<db label>/<name>`: one report per image and database.

    Scanning the same digest with the same database again writes the same key, so
    it keeps one stored report; a new database gives the rescan its own.
    """
    hex_part = digest.removeprefix("sha256:")
    db = _SAFE.sub("-", db_label) if db_label else "no-vulnerability-db"
    return f"teams/{_SAFE.sub('-', team)}/images/{hex_part}/{db}/{_SAFE.sub('-', name)}"
