"""Token-bucket arithmetic: refill by elapsed time, take one token, or say how long to wait.

The Redis limiter runs the same arithmetic in a Lua script (atomic per bucket
pair); the in-process limiter of a single-process platform runs this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """`rate` tokens per second refill a bucket holding at most `burst`."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float
    """Seconds on the limiter's clock."""


def refill(bucket: Bucket | None, limit: BucketLimit, now: float) -> Bucket:
    """The bucket at `now`: full when new, else refilled for the time since its update.

    A clock that went backwards refills nothing (and never drains).
    """
    if bucket is None:
        return Bucket(float(limit.burst), now)
    elapsed = max(0.0, now - bucket.updated_at)
    return Bucket(min(float(limit.burst), bucket.tokens + elapsed * limit.rate), now)


def wait_for_token(bucket: Bucket, limit: BucketLimit) -> float:
    """Seconds until `bucket` holds one whole token (0 when it does now)."""
    missing = 1.0 - bucket.tokens
    return 0.0 if missing <= 0 else missing / limit.rate


def take_all(
    buckets: list[Bucket | None], limits: list[BucketLimit], now: float
) -> tuple[list[Bucket], float]:
    """Take one token from every bucket, or from none: `(new buckets, wait seconds)`.

    The wait is 0 when the tokens were taken; otherwise the longest wait of any
    bucket, and the buckets are only refilled.
    """
    refilled = [refill(b, limit, now) for b, limit in zip(buckets, limits, strict=True)]
    wait = max((wait_for_token(b, limit) for b, limit in zip(refilled, limits, strict=True)))
    if wait > 0:
        return refilled, wait
    return [Bucket(b.tokens - 1.0, b.updated_at) for b in refilled], 0.0


def retry_after_seconds(wait_s: float) -> int:
    """`Retry-After` for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s))
