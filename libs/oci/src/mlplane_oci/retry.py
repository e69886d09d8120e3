"""How often and how patiently the OCI client retries a registry call.

Retried: connection errors and timeouts, 429 (after `Retry-After` when the registry
sends it) and 5xx, for calls that are safe to repeat. Delays grow exponentially
with full jitter so replicas of the builder that failed together do not come back
together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` counts the first try: 1 means no retry."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    # A registry asking for more than this is treated as down rather than waited on.
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def backoff_s(self, failures: int) -> float:
        """Delay before the next try after `failures` consecutive failures (1, 2, ...)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (failures - 1))
        # Half fixed, half random: spreads retries without ever retrying at once.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay_s(self, failures: int, retry_after_s: float | None) -> float:
        """`Retry-After` when the registry gave one (capped), else the backoff."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_retry_after_s)
        return self.backoff_s(failures)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
