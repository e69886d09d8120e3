"""Which vulnerability database a Trivy cache holds, read from its metadata.json.

Trivy keeps the database in `<cache>/db/` beside `metadata.json`
(`{"Version", "NextUpdate", "UpdatedAt", "DownloadedAt"}`). `UpdatedAt` tells one
database build from another: when it changes, deployed images are rescanned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DB_DIRECTORY = "db"
METADATA_FILE = "metadata.json"
DATABASE_FILE = "trivy.db"


@dataclass(frozen=True, slots=True)
class DbVersion:
    """One build of Trivy's vulnerability database.

    `schema` is the database's schema version (2 for Trivy 0.76), `updated_at`
    when its publisher built it, `next_update` when a newer one is expected.
    """

    schema: int
    updated_at: datetime
    next_update: datetime
    downloaded_at: datetime | None = None

    @property
    def label(self) -> str:
        """A stable name for this build, e.g. `v2-2026-11-26T10:56:14Z`."""
        return f"v{self.schema}-{self.updated_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    def due(self, now: datetime) -> bool:
        """True once a newer database is expected (Trivy would download again)."""
        return now >= self.next_update


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    # Go prints nanoseconds; Python keeps microseconds.
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Go's zero time means "never".
    return None if parsed.year <= 1 else parsed.astimezone(UTC)


def parse_db_metadata(document: Any) -> DbVersion | None:
    """A DbVersion from metadata.json's content (or `VulnerabilityDB` of `trivy --version`).

    None when the document does not describe a database (missing or malformed fields).
    """
    if not isinstance(document, dict):
        return None
    schema = document.get("Version")
    updated_at = _timestamp(document.get("UpdatedAt"))
    next_update = _timestamp(document.get("NextUpdate"))
    if not isinstance(schema, int) or updated_at is None or next_update is None:
        return None
    return DbVersion(
        schema=schema,
        updated_at=updated_at,
        next_update=next_update,
        downloaded_at=_timestamp(document.get("DownloadedAt")),
    )


def cached_db_version(cache_dir: Path) -> DbVersion | None:
    """The database in Trivy cache `cache_dir`; None when it holds none (or an unreadable one)."""
    directory = cache_dir / DB_DIRECTORY
    if not (directory / DATABASE_FILE).is_file():
        return None
    try:
        document = json.loads((directory / METADATA_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return parse_db_metadata(document)
