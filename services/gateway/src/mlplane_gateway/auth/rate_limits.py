"""Rate limits: a token bucket per principal and one per team, taken together.

In Redis the two buckets are read, refilled and taken by one Lua script, so
concurrent requests on many gateway replicas never overspend; both keys share
the team as hash tag, so the script also runs on a Redis Cluster. A principal
calling often takes several tokens per script call and spends them here
(`token_lease`), so most requests make no round trip. Without Redis
(one-process platform), the same arithmetic runs in memory.

Failed authentications are counted too, per client address and per presented
key id, in a fixed window: past `max_failures` in `window_s` the next attempt
is refused with 429 before its credential is even checked, so guessing keys or
tokens goes no faster than that, and a right guess is not told apart while refused.
With Redis, the blocks are published to every gateway process, which checks
requests against them in memory (`failure_blocks`).

Redis down: with `fail_open` the request passes (logged at most every 30 s):
authentication still holds, only the abuse guard is off; without it the
request is refused with 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mlplane_gateway.auth.failure_blocks import BlockedNames, BlockListener
from mlplane_gateway.auth.principals import Principal
from mlplane_gateway.auth.token_bucket import (
    Bucket,
    BucketLimit,
    retry_after_seconds,
    take_all,
)
from mlplane_gateway.auth.token_lease import Lease, lease_ceiling
from mlplane_gateway.errors import RateLimited, RateLimiterUnavailable

_log = logging.getLogger("mlplane.gateway")
_WARN_EVERY_S = 30.0
_OPERATOR_TEAM = "_operator"

# KEYS: bucket keys; ARGV: rate, burst for each key in order, then how many tokens
# are wanted. Returns {tokens taken from every bucket (up to the wanted number, as
# many as the emptiest bucket holds), the wait in milliseconds when none could be}.
# Redis' own clock, so replicas with skewed clocks agree.
_TAKE_ALL = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local tokens = {}
local granted = tonumber(ARGV[#ARGV])
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
  granted = math.min(granted, math.floor(level))
  if level < 1 then
    wait = math.max(wait, math.ceil((1 - level) * 1000 / rate))
  end
end
if granted < 1 then granted = 0 end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local level = tokens[i] - granted
  redis.call('HSET', key, 't', tostring(level), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return {granted, wait}
"""

# KEYS: the failure counters, then the set of blocks; ARGV: the window in
# milliseconds, the limit, the channel, then the counters' names. Counts one failure
# per name (the window starts at its first); a name at the limit is added to the
# set and published. Returns name, milliseconds left, ... of the names now blocked.
_RECORD_FAILURES = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local blocks_key = KEYS[#KEYS]
local blocked = {}
for i = 1, #KEYS - 1 do
  local count = redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], window, 'NX')
  if count >= limit then
    local left = redis.call('PTTL', KEYS[i])
    if left > 0 then
      local name = ARGV[3 + i]
      redis.call('ZADD', blocks_key, now + left, name)
      redis.call('PEXPIRE', blocks_key, window)
      redis.call('PUBLISH', ARGV[3], tostring(left) .. ' ' .. name)
      blocked[#blocked + 1] = name
      blocked[#blocked + 1] = left
    end
  end
end
return blocked
"""


@dataclass(frozen=True, slots=True)
class FailureLimit:
    """At most `max_failures` failed authentications per name in `window_s`."""

    max_failures: int = 20
    window_s: float = 60.0


class RateLimiter(Protocol):
    async def take(self, principal: Principal) -> None:
        """Take one request's tokens; RateLimited (429) when a bucket is empty,
        RateLimiterUnavailable (503) when the store is down and failing closed."""
        ...

    async def check_failures(self, names: Sequence[str]) -> None:
        """RateLimited (429) when any of `names` (a client address, a key id) has
        failed authentication too often in the current window."""
        ...

    async def record_failure(self, names: Sequence[str]) -> None:
        """Count one failed authentication against each of `names`."""
        ...

    def start(self) -> None:
        """Start what runs beside requests (on the running loop)."""
        ...

    async def aclose(self) -> None: ...


class NoRateLimit:
    async def take(self, principal: Principal) -> None:
        return None

    async def check_failures(self, names: Sequence[str]) -> None:
        return None

    async def record_failure(self, names: Sequence[str]) -> None:
        return None

    def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _too_many_failures(wait_s: float) -> RateLimited:
    seconds = retry_after_seconds(wait_s)
    return RateLimited(
        f"too many failed authentications from here; retry in {seconds} s",
        retry_after_s=seconds,
    )


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
        failure_limit: FailureLimit | None = None,
        max_leases: int = 100_000,
    ) -> None:
        self._client = client
        self._failure_limit = failure_limit or FailureLimit()
        self._key_limit = key_limit
        self._team_limit = team_limit
        self._prefix = prefix
        self._fail_open = fail_open
        self._script = client.register_script(_TAKE_ALL)
        self._record = client.register_script(_RECORD_FAILURES)
        self._warned_at = -_WARN_EVERY_S
        self._leases: OrderedDict[str, Lease] = OrderedDict()
        self._max_leases = max_leases
        # A lease being asked for, per principal: the other requests wait for it.
        self._asking: dict[str, asyncio.Event] = {}
        self._blocked = BlockedNames()
        self._blocks_channel = f"{prefix}:authfail-blocks"
        self._blocks_key = f"{prefix}:authfail-blocked"
        self._blocks = BlockListener(client, self._blocks_channel, self._blocks_key, self._blocked)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float, **options: object) -> RedisRateLimiter:
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, **options)  # type: ignore[arg-type]

    @property
    def blocks_live(self) -> bool:
        """Whether failure blocks are checked in memory (else in Redis, per request)."""
        return self._blocks.live

    def start(self) -> None:
        self._blocks.start()

    async def take(self, principal: Principal) -> None:
        team = principal.team or _OPERATOR_TEAM
        # `{team}` is the hash tag: both keys live in one cluster slot.
        keys = [f"{self._prefix}:{{{team}}}:p:{principal.id}"]
        args: list[float | int] = [self._key_limit.rate, self._key_limit.burst]
        limits = [self._key_limit]
        if principal.team is not None:
            keys.append(f"{self._prefix}:{{{team}}}:team")
            args += [self._team_limit.rate, self._team_limit.burst]
            limits.append(self._team_limit)
        name = keys[0]
        while True:
            lease = self._lease(name, limits)
            now = time.monotonic()
            if lease.spend(now):
                return
            refused_s = lease.refused_for(now)
            if refused_s > 0:
                raise _limited(refused_s)
            asking = self._asking.get(name)
            if asking is None:
                break
            await asking.wait()  # then spend from what it got, or ask in turn
        asking = self._asking[name] = asyncio.Event()
        try:
            wanted = lease.wanted(time.monotonic())
            granted, wait_ms = await self._script(keys=keys, args=[*args, wanted])
        except (RedisError, OSError) as exc:
            self._store_down(exc)
            return
        finally:
            del self._asking[name]
            asking.set()
        if int(granted) < 1:
            lease.refuse(int(wait_ms) / 1000, time.monotonic())
            raise _limited(int(wait_ms) / 1000)
        lease.grant(int(granted), time.monotonic())

    def _lease(self, name: str, limits: list[BucketLimit]) -> Lease:
        lease = self._leases.get(name)
        if lease is None:
            lease = self._leases[name] = Lease(lease_ceiling(limits))
            while len(self._leases) > self._max_leases:
                self._leases.popitem(last=False)
        else:
            self._leases.move_to_end(name)
        return lease

    def _failure_key(self, name: str) -> str:
        return f"{self._prefix}:authfail:{name}"

    async def check_failures(self, names: Sequence[str]) -> None:
        if not names:
            return
        if self._blocks.live:
            wait_s = self._blocked.wait_s(names)
            if wait_s > 0:
                raise _too_many_failures(wait_s)
            return
        keys = [self._failure_key(name) for name in names]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                answers = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._store_down(exc)
            return
        wait_ms = 0
        for count, ttl in zip(answers[::2], answers[1::2], strict=True):
            if count is not None and int(count) >= self._failure_limit.max_failures:
                wait_ms = max(wait_ms, int(ttl), 1)
        if wait_ms > 0:
            raise _too_many_failures(wait_ms / 1000)

    async def record_failure(self, names: Sequence[str]) -> None:
        if not names:
            return
        window_ms = max(1, int(self._failure_limit.window_s * 1000))
        try:
            blocked = await self._record(
                keys=[*(self._failure_key(name) for name in names), self._blocks_key],
                args=[window_ms, self._failure_limit.max_failures, self._blocks_channel, *names],
            )
        except (RedisError, OSError) as exc:
            self._store_down(exc)
            return
        # Known here at once, without waiting for the publish to come back.
        for name, left_ms in zip(blocked[::2], blocked[1::2], strict=True):
            self._blocked.block(name.decode(), int(left_ms) / 1000)

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
        await self._blocks.aclose()
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
        failure_limit: FailureLimit | None = None,
    ) -> None:
        self._failure_limit = failure_limit or FailureLimit()
        # name → (failures, when the window ends)
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
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

    async def check_failures(self, names: Sequence[str]) -> None:
        now = self._clock()
        wait = 0.0
        for name in names:
            count, ends_at = self._failures.get(name, (0, now))
            if ends_at > now and count >= self._failure_limit.max_failures:
                wait = max(wait, ends_at - now)
        if wait > 0:
            raise _too_many_failures(wait)

    async def record_failure(self, names: Sequence[str]) -> None:
        now = self._clock()
        for name in names:
            count, ends_at = self._failures.get(name, (0, now))
            if ends_at <= now:
                count, ends_at = 0, now + self._failure_limit.window_s
            self._failures[name] = (count + 1, ends_at)
            self._failures.move_to_end(name)
        while len(self._failures) > self._max_buckets:
            self._failures.popitem(last=False)

    def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
