"""Token-bucket arithmetic."""

from __future__ import annotations

import pytest
from mlplane_gateway.auth.token_bucket import (
    Bucket,
    BucketLimit,
    refill,
    retry_after_seconds,
    take_all,
)

LIMIT = BucketLimit(rate=2.0, burst=3)


class TestRefill:
    def test_a_new_bucket_is_full(self) -> None:
        assert refill(None, LIMIT, 10.0) == Bucket(3.0, 10.0)

    def test_tokens_come_back_at_the_rate_up_to_the_burst(self) -> None:
        assert refill(Bucket(0.0, 10.0), LIMIT, 10.5).tokens == pytest.approx(1.0)
        assert refill(Bucket(0.0, 10.0), LIMIT, 100.0).tokens == 3.0

    def test_a_clock_going_backwards_refills_nothing(self) -> None:
        assert refill(Bucket(1.0, 10.0), LIMIT, 9.0).tokens == 1.0


class TestTakeAll:
    def test_takes_one_token_from_every_bucket(self) -> None:
        buckets, wait = take_all([None, Bucket(2.0, 0.0)], [LIMIT, LIMIT], 0.0)
        assert wait == 0
        assert [b.tokens for b in buckets] == [2.0, 1.0]

    def test_takes_nothing_when_any_bucket_is_empty(self) -> None:
        buckets, wait = take_all([Bucket(3.0, 0.0), Bucket(0.5, 0.0)], [LIMIT, LIMIT], 0.0)
        assert wait == pytest.approx(0.25)
        assert [b.tokens for b in buckets] == [3.0, 0.5]

    def test_a_burst_is_served_then_refused(self) -> None:
        bucket: Bucket | None = None
        served = 0
        for _ in range(10):
            [bucket], wait = take_all([bucket], [LIMIT], 0.0)
            served += wait == 0
        assert served == 3


class TestRetryAfter:
    @pytest.mark.parametrize(("wait", "seconds"), [(0.001, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
    def test_whole_seconds_rounded_up_at_least_one(self, wait: float, seconds: int) -> None:
        assert retry_after_seconds(wait) == seconds


def test_a_limit_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="rate"):
        BucketLimit(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        BucketLimit(rate=1, burst=0)
