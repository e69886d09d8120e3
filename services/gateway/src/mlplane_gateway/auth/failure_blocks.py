"""Names refused for failed authentications, known in this process without asking Redis.

Failed authentications are counted in Redis, by every gateway process. Reading the
counts before each request was a Redis round trip per request. Instead, the failure
that brings a name (a client address, a key id) to the limit also adds it to a
sorted set of blocks (score: when the block ends, on Redis' clock) and publishes
it on a channel. Every gateway process subscribes to that channel, then reads the
set once (subscribed first, read after: a block published in between is not
missed), and keeps the blocks in memory (`BlockedNames`); each request is checked
there.

Fail safe: while the subscription is not up (not yet, or its connection broke, or
Redis is down), `BlockListener.live` is False and requests are checked in Redis as
before; when it comes back, the set is read again. What is left is the publish's
delivery time (well under a millisecond) and, for a connection that dies silently,
at most the heartbeat interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

_log = logging.getLogger("mlplane.gateway")
_HEARTBEAT_S = 5.0
_MAX_BACKOFF_S = 10.0
DEFAULT_MAX_NAMES = 100_000

# KEYS[1]: the set of blocks. Drops the ended ones; returns name, milliseconds left, ...
READ_BLOCKS = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local blocks = {}
for i = 1, #found, 2 do
  blocks[#blocks + 1] = found[i]
  blocks[#blocks + 1] = tostring(tonumber(found[i + 1]) - now)
end
return blocks
"""


def parse_block_message(data: bytes | str) -> tuple[str, float] | None:
    """(name, seconds left) of a published block (`<milliseconds left> <name>`, as
    the rate limiter's failure script publishes it); None for anything else."""
    text = data.decode() if isinstance(data, bytes) else data
    ttl, _, name = text.partition(" ")
    if not name or not ttl.isdigit():
        return None
    return name, int(ttl) / 1000


class BlockedNames:
    """Blocked names → when their block ends (monotonic seconds). Bounded: the blocks
    ending soonest go first. Not thread-safe (the event loop's)."""

    def __init__(
        self, max_names: int = DEFAULT_MAX_NAMES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ends: OrderedDict[str, float] = OrderedDict()
        self._max_names = max_names
        self._clock = clock

    def block(self, name: str, seconds: float) -> None:
        ends = self._clock() + seconds
        if ends <= self._ends.get(name, 0.0):
            return
        self._ends[name] = ends
        self._ends.move_to_end(name)
        while len(self._ends) > self._max_names:
            oldest = min(self._ends, key=self._ends.__getitem__)
            del self._ends[oldest]

    def wait_s(self, names: Sequence[str]) -> float:
        """Seconds until none of `names` is blocked (0 when none is)."""
        now = self._clock()
        wait = 0.0
        for name in names:
            ends = self._ends.get(name)
            if ends is None:
                continue
            if ends <= now:
                del self._ends[name]
            else:
                wait = max(wait, ends - now)
        return wait

    def clear(self) -> None:
        self._ends.clear()


class BlockListener:
    """Keeps `names` in step with the blocks published on `channel` and kept in the
    set at `blocks_key`, on a Redis connection of its own."""

    def __init__(
        self, client: aioredis.Redis, channel: str, blocks_key: str, names: BlockedNames
    ) -> None:
        self._client = client
        self._channel = channel
        self._blocks_key = blocks_key
        self._names = names
        self._read_blocks = client.register_script(READ_BLOCKS)
        self._live = False
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        """Whether `names` holds every block: subscribed, and the set read since."""
        return self._live

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-auth-failure-blocks")

    async def aclose(self) -> None:
        self._live = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as exc:
                _log.debug("auth failure blocks: subscription lost (%s)", type(exc).__name__)
            self._live = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _follow(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while (await pubsub.get_message(timeout=_HEARTBEAT_S)) is None:
                pass  # the subscription's confirmation comes first
            blocks = await self._read_blocks(keys=[self._blocks_key])
            for name, ttl in zip(blocks[::2], blocks[1::2], strict=True):
                self._names.block(name.decode(), int(ttl) / 1000)
            self._live = True
            pinged = False
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=_HEARTBEAT_S
                )
                if message is None:
                    if pinged:
                        raise ConnectionError("no answer to a ping on the subscription")
                    # Quiet: a ping shows the connection is still there.
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message.get("type") != "message":
                    continue
                block = parse_block_message(message["data"])
                if block is not None:
                    self._names.block(*block)
        finally:
            self._live = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]
