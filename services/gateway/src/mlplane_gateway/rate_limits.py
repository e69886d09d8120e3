"""Rate limits: a token bucket per principal and one per team, taken together.

In Redis the two buckets are read, refilled and taken by one Lua script, so
concurrent requests on many gateway replicas never overspend; both keys share
the team as hash tag, so the script also runs on a Redis Cluster. Without
Redis (one-process platform), the same arithmetic runs in memory.

Redis down: with `fail_open` the request passes (logged at most every 30 s):
authentication still holds, only the abuse guard is off; without it the
request is refused with 503.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mlplane_gateway.domain.errors import RateLimited, RateLimiterUnavailable
from mlplane_gateway.domain.principals import Principal
from mlplane_gateway.domain.token_bucket import (
    Bucket,
    BucketLimit,
    retry_after_seconds,
    take_all,
)

_log = logging.getLogger("mlplane.gateway")
_WARN_EVERY_S = 30.0
_OPERATOR_TEAM = "_operator"

# KEYS: bucket keys; ARGV: rate, burst for each key in order. Returns the wait in
# milliseconds (0: one token taken from every bucket). Redis' own clock, so
# replicas with skewed clocks agree.
_TAKE_ALL = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local tokens = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 't', 'at')
  local level = tonumber(state[1])
  local at = tonumber(state[2])
  if level == nil or at == nil then
    level = burst
  else
    level = math.min(burst, level + math.max(0, now - at) * rate / 1000)
  end
  tokens[i] = level
  if level < 1 then
    wait = math.max(wait, math.ceil((1 - level) * 1000 / rate))
  end
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local level = tokens[i]
  if wait == 0 then level = level - 1 end
  redis.call('HSET', key, 't', tostring(level), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return wait
"""


class RateLimiter(Protocol):
    async def take(self, principal: Principal) -> None:
        """Take one request's tokens; RateLimited (429) when a bucket is empty,
        RateLimiterUnavailable (503) when the store is down and failing closed."""
        ...

    async def aclose(self) -> None: ...


class NoRateLimit:
    async def take(self, principal: Principal) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _limited(wait_s: float) -> RateLimited:
    seconds = retry_after_seconds(wait_s)
    return RateLimited(f"rate limit reached; retry in {seconds} s", retry_after_s=seconds)


class RedisRateLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_limit: BucketLimit,
        team_limit: BucketLimit,
        prefix: str,
        fail_open: bool,
    ) -> None:
        self._client = client
        self._key_limit = key_limit
        self._team_limit = team_limit
        self._prefix = prefix
        self._fail_open = fail_open
        self._script = client.register_script(_TAKE_ALL)
        self._warned_at = -_WARN_EVERY_S

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float, **options: object) -> RedisRateLimiter:
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, **options)  # type: ignore[arg-type]

    async def take(self, principal: Principal) -> None:
        team = principal.team or _OPERATOR_TEAM
        # `{team}` is the hash tag: both keys live in one cluster slot.
        keys = [f"{self._prefix}:{{{team}}}:p:{principal.id}"]
        args: list[float | int] = [self._key_limit.rate, self._key_limit.burst]
        if principal.team is not None:
            keys.append(f"{self._prefix}:{{{team}}}:team")
            args += [self._team_limit.rate, self._team_limit.burst]
        try:
            wait_ms = int(await self._script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            self._store_down(exc)
            return
        if wait_ms > 0:
            raise _limited(wait_ms / 1000)

    def _store_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            _log.warning(
                "rate-limit store unreachable (%s): failing %s",
                type(exc).__name__,
                "open" if self._fail_open else "closed",
            )
        if not self._fail_open:
            raise RateLimiterUnavailable("the rate limiter is unavailable; retry shortly") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class InProcessRateLimiter:
    """The buckets in this process's memory: right only when one process serves."""

    def __init__(
        self,
        *,
        key_limit: BucketLimit,
        team_limit: BucketLimit,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key_limit = key_limit
        self._team_limit = team_limit
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    async def take(self, principal: Principal) -> None:
        names = [f"p:{principal.id}"]
        limits = [self._key_limit]
        if principal.team is not None:
            names.append(f"t:{principal.team}")
            limits.append(self._team_limit)
        # No await between read and write: atomic on the event loop.
        buckets, wait = take_all([self._buckets.get(n) for n in names], limits, self._clock())
        for name, bucket in zip(names, buckets, strict=True):
            self._buckets[name] = bucket
            self._buckets.move_to_end(name)
        while len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        if wait > 0:
            raise _limited(wait)

    async def aclose(self) -> None:
        return None
