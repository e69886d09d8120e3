"""The Redis limiter's shortcuts on the real Redis: tokens leased in batches, failure
blocks known in memory. Several limiters on one prefix stand for gateway processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from mlplane_gateway.auth.principals import Principal, PrincipalKind
from mlplane_gateway.auth.rate_limits import FailureLimit, RedisRateLimiter
from mlplane_gateway.auth.token_bucket import BucketLimit
from mlplane_gateway.errors import RateLimited

from ..conftest import REDIS_URL

DEADLINE_S = 10.0
PRINCIPAL = Principal(kind=PrincipalKind.API_KEY, id="apikey:k1", team="t1", scopes=frozenset())


class CountingRedis(aioredis.Redis):
    """Redis that counts the scripts it runs and the pipelines it sends."""

    scripts = 0
    pipelines = 0

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.scripts += 1
        return await super().evalsha(*args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


@asynccontextmanager
async def limiter(
    prefix: str, *, limit: BucketLimit, start: bool = True, failures: int = 3
) -> AsyncIterator[tuple[RedisRateLimiter, CountingRedis]]:
    client = CountingRedis.from_url(REDIS_URL)
    made = RedisRateLimiter(
        client,
        key_limit=limit,
        team_limit=limit,
        prefix=prefix,
        fail_open=False,
        failure_limit=FailureLimit(max_failures=failures, window_s=30),
    )
    if start:
        made.start()
    try:
        yield made, client
    finally:
        await made.aclose()


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something another connection brings about."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "did not happen in time"
        await asyncio.sleep(0.01)


async def blocked(limiter: RedisRateLimiter, names: list[str]) -> RateLimited | None:
    try:
        await limiter.check_failures(names)
    except RateLimited as refused:
        return refused
    return None


async def admitted(limiter: RedisRateLimiter, count: int) -> int:
    async def one() -> bool:
        try:
            await limiter.take(PRINCIPAL)
        except RateLimited:
            return False
        return True

    return sum(await asyncio.gather(*(one() for _ in range(count))))


async def test_leases_save_round_trips(redis_prefix: str) -> None:
    # Burst 10,000 and 1,000/s: leases of up to 64 tokens; nothing is refused.
    async with limiter(redis_prefix, limit=BucketLimit(rate=1000, burst=10_000)) as (one, redis):
        assert await admitted(one, 500) == 500
        assert redis.scripts < 500


async def test_two_processes_with_leases_never_spend_more_than_the_buckets_give(
    redis_prefix: str,
) -> None:
    # Burst 400 and 40/s: leases of up to 10 tokens, refused past the burst.
    limit = BucketLimit(rate=40, burst=400)
    async with (
        limiter(redis_prefix, limit=limit, start=False) as (first, first_redis),
        limiter(redis_prefix, limit=limit, start=False) as (second, second_redis),
    ):
        began = time.monotonic()
        counts = await asyncio.gather(admitted(first, 600), admitted(second, 600))
        elapsed = time.monotonic() - began
    # What the buckets could give in that time, whoever asked; leases only drop tokens.
    assert sum(counts) <= limit.burst + limit.rate * elapsed + 1
    assert min(counts) > 0
    # A refusal is kept until the buckets' next token: not asked again per request.
    assert first_redis.scripts + second_redis.scripts < 1200


async def test_a_small_burst_is_taken_exactly_one_token_per_request(redis_prefix: str) -> None:
    async with limiter(redis_prefix, limit=BucketLimit(rate=0.1, burst=5), start=False) as (
        one,
        redis,
    ):
        assert await admitted(one, 12) == 5
        # One call per token, one for the refusal, which then holds for the other six.
        assert redis.scripts == 6


async def test_a_block_reaches_a_running_process_which_then_checks_in_memory(
    redis_prefix: str,
) -> None:
    limit = BucketLimit(rate=10, burst=10)
    async with (
        limiter(redis_prefix, limit=limit) as (recorder, _),
        limiter(redis_prefix, limit=limit) as (checker, checker_redis),
    ):
        await until(lambda: recorder.blocks_live and checker.blocks_live)
        names = ["ip:10.1.2.3", "key:abcdefgh"]
        await checker.check_failures(names)
        for _ in range(3):
            await recorder.record_failure(["ip:10.1.2.3"])

        # Published, not read per request: poll the checker until the block arrives.
        deadline = time.monotonic() + DEADLINE_S
        while await blocked(checker, names) is None:
            assert time.monotonic() < deadline, "the block did not reach the other process"
            await asyncio.sleep(0.01)
        assert checker_redis.pipelines == 0  # no per-request read of the counts
        # The process that recorded it knows at once; other names pass.
        with pytest.raises(RateLimited):
            await recorder.check_failures(["ip:10.1.2.3"])
        await checker.check_failures(["ip:10.9.9.9", "key:abcdefgh"])


async def test_a_process_started_after_a_block_reads_it(redis_prefix: str) -> None:
    limit = BucketLimit(rate=10, burst=10)
    async with limiter(redis_prefix, limit=limit) as (recorder, _):
        for _ in range(3):
            await recorder.record_failure(["key:guessed1"])
        async with limiter(redis_prefix, limit=limit) as (late, _):
            await until(lambda: late.blocks_live)
            with pytest.raises(RateLimited):
                await late.check_failures(["ip:10.0.0.7", "key:guessed1"])


async def test_a_process_not_subscribed_checks_the_counts_in_redis(redis_prefix: str) -> None:
    limit = BucketLimit(rate=10, burst=10)
    async with (
        limiter(redis_prefix, limit=limit, start=False) as (recorder, _),
        limiter(redis_prefix, limit=limit, start=False) as (checker, checker_redis),
    ):
        assert not checker.blocks_live
        for _ in range(3):
            await recorder.record_failure(["ip:10.3.3.3"])
        with pytest.raises(RateLimited):
            await checker.check_failures(["ip:10.3.3.3"])
        assert checker_redis.pipelines == 1
