"""When a failed call to a service is tried again, and after how long.

Only calls that cannot do harm twice are retried: GET and HEAD, and any request
carrying an `Idempotency-Key` (the service promises to apply it once). PUT and
DELETE are idempotent by HTTP's definition, but ours may carry `If-Match` and
side effects (events) that a blind repeat would confuse, so they are not retried
unless the caller sends a key. Retried outcomes: the connection failed, or the
service answered 502, 503 or 504 (it, or something in front of it, is
momentarily unwell). A timeout waiting for the answer is not retried: the
service may still be working on it, and the caller's wait would multiply.

Delays grow exponentially and are drawn uniformly below that bound ("full
jitter"), so callers that failed together do not come back together.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD"})
IDEMPOTENCY_KEY_HEADER: Final = "idempotency-key"
RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})


def is_retryable_request(method: str, headers: Mapping[str, str]) -> bool:
    """True when the request may be sent again after a retryable failure.

    `headers` must look names up case-insensitively (Starlette's and httpx's do).
    """
    return method.upper() in IDEMPOTENT_METHODS or bool(headers.get(IDEMPOTENCY_KEY_HEADER))


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all (1: no retry), delays capped at `max_delay_s`."""

    attempts: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0
    random_fraction: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("attempts >= 1 and 0 <= base_delay_s <= max_delay_s")

    def delay_s(self, attempt: int) -> float:
        """The wait before try `attempt + 1`, after try `attempt` (1-based) failed."""
        bound: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return bound * self.random_fraction()

    def allows_another(self, attempt: int) -> bool:
        """True when try `attempt` (1-based) may be followed by another."""
        return attempt < self.attempts
