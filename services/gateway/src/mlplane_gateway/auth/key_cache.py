"""Verified API keys kept in this process, dropped the moment the database says so.

Looking a key up costs a database round trip, most of an authenticated request's
cost at the gateway. So a key that verified is kept (its principal, its hash and
its expiry) for `ttl_s`, and later requests check the presented key against the
kept hash and the expiry in memory. Revocation stays immediate across processes:
the api_keys table NOTIFYs on `api_keys_channel` in the transaction that revokes,
changes or deletes a key (a trigger, migration 0003), and every gateway LISTENs on
a connection of its own and drops that key.

Fail safe: while the LISTEN connection is not up, nothing is read from or kept in
the cache (every request goes to the database, as without a cache), and when it
comes back the cache starts empty, since NOTIFYs sent meanwhile were lost. A key
read from the database is kept only if no NOTIFY (and no reconnection) arrived
while it was being read, so a revocation racing the read cannot be overwritten
by the older row. What is left is the NOTIFY's own delivery time (milliseconds
after the revoking commit) and, for a connection that dies silently, at most the
heartbeat interval plus `ttl_s`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mlplane_runtime.db import Database
from mlplane_runtime.listen import NotificationListener

from mlplane_gateway.auth.principals import Principal
from mlplane_gateway.keys.domain import ApiKey

DEFAULT_TTL_S = 60.0
DEFAULT_MAX_KEYS = 10_000
_HEARTBEAT_S = 10.0
_MAX_BACKOFF_S = 10.0


def api_keys_channel(schema: str) -> str:
    """The channel the api_keys trigger NOTIFYs on (cut to PostgreSQL's 63 bytes, as
    the trigger cuts it; two long schemas sharing a prefix only evict each other's keys)."""
    return f"mlplane_api_keys_{schema}"[:63]


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    principal: Principal
    key_hash: bytes
    expires_at: datetime | None
    fresh_until: float
    """Monotonic time past which the row is read again (and `last_used_at` touched)."""


class VerifiedKeys:
    """The cache: key id → what a presented key is checked against. Bounded, FIFO."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_keys < 1:
            raise ValueError("ttl_s must be > 0 and max_keys >= 1")
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._keys: OrderedDict[str, VerifiedKey] = OrderedDict()
        self._listening = False
        self._generation = 0

    @property
    def active(self) -> bool:
        """True while revocations reach this process (the cache is in use)."""
        return self._listening

    @property
    def generation(self) -> int:
        """Changes on every eviction and every change of the LISTEN connection: read it
        before a database read, hand it to `keep`."""
        return self._generation

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key_id: str) -> VerifiedKey | None:
        """The kept key, or None (not kept, stale, or the cache is not in use)."""
        if not self._listening:
            return None
        found = self._keys.get(key_id)
        if found is not None and self._monotonic() >= found.fresh_until:
            del self._keys[key_id]
            return None
        return found

    def keep(self, key: ApiKey, generation: int) -> None:
        """Keep a key just verified from a row read after `generation` was taken;
        ignored when anything was evicted since (the row may predate a revocation)."""
        if not self._listening or generation != self._generation:
            return
        self._keys.pop(key.id, None)
        self._keys[key.id] = VerifiedKey(
            principal=key.principal(),
            key_hash=key.key_hash,
            expires_at=key.expires_at,
            fresh_until=self._monotonic() + self._ttl_s,
        )
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)

    def evict(self, key_id: str) -> None:
        """Forget `key_id` ('' forgets every key)."""
        self._generation += 1
        if key_id:
            self._keys.pop(key_id, None)
        else:
            self._keys.clear()

    def listening(self, up: bool) -> None:
        """The LISTEN connection came up (`True`) or went down: start empty either way."""
        self._generation += 1
        self._listening = up
        self._keys.clear()


class RevocationListener:
    """Keeps a LISTEN connection on the api_keys channel up, evicting announced keys.

    `start()` on the running loop, `aclose()` to stop. Never raises: a lost
    connection is logged and retried with backoff (the runtime's
    `NotificationListener`), the cache off meanwhile.
    """

    def __init__(self, database: Database, schema: str, keys: VerifiedKeys) -> None:
        self._keys = keys
        self._listener = NotificationListener(
            database,
            [api_keys_channel(schema)],
            lambda _channel, payload: keys.evict(payload),
            # Only once LISTEN is in place is the cache used: no revocation is missed.
            on_connection=keys.listening,
            name="API key revocations",
            heartbeat_s=_HEARTBEAT_S,
            max_backoff_s=_MAX_BACKOFF_S,
        )

    def start(self) -> None:
        self._listener.start()

    async def aclose(self) -> None:
        await self._listener.aclose()
        self._keys.listening(False)
