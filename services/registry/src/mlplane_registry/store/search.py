"""Search filters and page cursors of the version search."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from mlplane_runtime.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class VersionFilter:
    """Search filters; every given one must hold."""

    model: str | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    alias: str | None = None
    stage: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends in the stable order (created_at, id)."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises `InvalidInput` for a token this service did not hand out."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, id_ = json.loads(raw)
            return cls(datetime.fromisoformat(created_at), int(id_))
        except (ValueError, TypeError) as exc:
            raise InvalidInput("invalid page cursor", field="query.cursor") from exc


@dataclass(frozen=True, slots=True)
class Comparison:
    """One clause of an MLflow search: `field op values` (`key` names a tag).

    `field`: `name`, `tag`, `run_id`, `source`, `version`, `created`, `updated` (the
    timestamps in epoch milliseconds, as MLflow sends them). `op`: `=`, `!=`,
    `LIKE`, `ILIKE`, `IN`, `NOT IN`, `<`, `<=`, `>`, `>=`; one value unless a list op.
    """

    field: str
    op: str
    values: tuple[str, ...]
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Ordering:
    """One key of a search's order: `name`, `version`, `created` or `updated`."""

    field: str
    descending: bool = False
