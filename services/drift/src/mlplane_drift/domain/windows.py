"""When a window closes: after so many samples, or so long after its first one, whichever
comes first. A model's environment may set its own; the settings give the default."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mlplane_drift.domain.errors import InvalidWindowPolicy


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    max_count: int | None
    """Close once the window holds at least this many samples (a batch is never split,
    so the last one may take it past)."""
    max_seconds: float | None
    """Close this long after the window's first sample."""

    def __post_init__(self) -> None:
        if self.max_count is None and self.max_seconds is None:
            raise InvalidWindowPolicy("a window closes by count, by time, or both: give one")
        if self.max_count is not None and self.max_count < 1:
            raise InvalidWindowPolicy("a window's count must be at least 1")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise InvalidWindowPolicy("a window's duration must be positive")

    def closes_at(self, opened_at: datetime) -> datetime | None:
        """When a window opened at `opened_at` is due, or None (by count only)."""
        if self.max_seconds is None:
            return None
        return opened_at + timedelta(seconds=self.max_seconds)

    def is_full(self, count: int) -> bool:
        return self.max_count is not None and count >= self.max_count


def is_due(closes_at: datetime | None, now: datetime) -> bool:
    """Whether a window whose time ends at `closes_at` must close at `now`."""
    return closes_at is not None and closes_at <= now
