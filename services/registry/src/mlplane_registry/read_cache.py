"""Each worker's cache of the hot reads' answers (a version, an alias), never stale after a
write was acknowledged, by this worker or any other.

What is kept: the answer's JSON body and ETag, per team and model, for the
version and alias reads of the REST API and its searches within one model; at most
`max_models` models, least recently used out first. Every change of a model, its
versions or its aliases NOTIFYs `<team>/<model>` in the writing transaction
(migration 0005's triggers, so every writer is covered), and this worker's LISTEN
connection drops the model's entries when it arrives.

Why an answer from here is never stale after an acknowledged write W (on any worker):

1. Before a hit is served, `NotificationListener.fence()` has returned for a round
   trip sent after the request arrived, so every NOTIFY committed before the
   request arrived has been applied; W was acknowledged before the request was
   sent, so after its commit, so W's NOTIFY has dropped whatever it made stale.
   A fence that fails (no connection, a timeout) means a database read instead.
2. An entry is only stored if nothing could have been missed while it was read:
   the reader takes the epoch (bumped by every NOTIFY applied and every reset)
   BEFORE its database read, and `put` refuses when it moved. If W's NOTIFY was
   applied before the epoch was taken, W had committed, so the read (which starts
   after) sees W. If it was applied after, the epoch moved and the answer is not
   stored (or it is dropped, if already stored). One epoch for all models: simple
   to get right, and it costs only the storing of reads that overlapped a write.
3. NOTIFYs sent while the LISTEN connection is down are lost, so the cache is off
   and empty from the loss until it LISTENs again (both are resets: an answer
   read across them is refused by 2).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mlplane_runtime.db import Database
from mlplane_runtime.listen import NotificationListener

_log = logging.getLogger("mlplane.registry.cache")

DEFAULT_MAX_MODELS = 10_000

Read = Callable[[], Awaitable["CachedAnswer"]]
"""Reads one answer from the database (raising what the read raises)."""

EntryKey = tuple[str, str | int]
"""What of a model is cached: `("version", 3)`, `("alias", "champion")` or
`("search", <canonical query>)`."""


def cache_channel(schema: str) -> str:
    """The NOTIFY channel of the registry in `schema` (as migration 0005's triggers name it)."""
    return f"mlplane_cache_{schema}"[:63]


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One read's answer as sent: the JSON body and the ETag (without quotes), if any."""

    body: bytes
    etag: str | None


class ReadCache:
    """The answers of one worker; `answer()` is a route's read through it."""

    def __init__(self, max_models: int = DEFAULT_MAX_MODELS) -> None:
        self._max_models = max_models
        self._models: OrderedDict[tuple[str, str], dict[EntryKey, CachedAnswer]] = OrderedDict()
        self._epoch = 0
        self._listener: NotificationListener | None = None
        self.hits = 0
        """Answers given from the cache (for tests and a curious operator)."""

    @property
    def enabled(self) -> bool:
        """True while a LISTEN connection is up: only then may answers be served or kept."""
        return self._listener is not None and self._listener.connected

    @property
    def listener(self) -> NotificationListener | None:
        """The LISTEN connection `listen` made, if it was called."""
        return self._listener

    def listen(self, database: Database, schema: str) -> NotificationListener:
        """The listener keeping this cache honest (start it on the running loop)."""
        self._listener = NotificationListener(
            database,
            [cache_channel(schema)],
            self._notified,
            on_connection=self._on_connection,
            name=f"read cache of {schema}",
        )
        return self._listener

    async def answer(
        self,
        team: str,
        model: str,
        key: EntryKey,
        read: Callable[[], Awaitable[CachedAnswer]],
    ) -> CachedAnswer:
        """The cached answer when it is certainly current, else `read()`'s (kept if it may).

        Raises what `read()` raises (not-found errors are never cached).
        """
        found = await self.lookup(team, model, key)
        if found is not None:
            return found
        epoch = self._epoch
        fresh = await read()
        self.put(team, model, key, fresh, epoch)
        return fresh

    async def lookup(self, team: str, model: str, key: EntryKey) -> CachedAnswer | None:
        """The cached answer when there is one and it is certainly current, else None."""
        if not self._models or not await self._fenced():
            return None
        entries = self._models.get((team, model))
        if entries is None:
            return None
        found = entries.get(key)
        if found is not None:
            self._models.move_to_end((team, model))
            self.hits += 1
        return found

    @property
    def epoch(self) -> int:
        """Moves with every change applied; take it before a read that `put` may keep."""
        return self._epoch

    def put(self, team: str, model: str, key: EntryKey, value: CachedAnswer, epoch: int) -> None:
        """Keep `value` unless the cache is off or the model changed since `epoch` was taken."""
        if not self.enabled or self._epoch != epoch:
            return
        entries = self._models.get((team, model))
        if entries is None:
            entries = self._models[(team, model)] = {}
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end((team, model))
        entries[key] = value

    def invalidate(self, team: str, model: str) -> None:
        """Drop what is kept of `team`'s `model` (it changed)."""
        self._models.pop((team, model), None)
        self._epoch += 1

    def reset(self) -> None:
        """Drop everything (the LISTEN connection went down or came back up)."""
        self._models.clear()
        self._epoch += 1

    async def _fenced(self) -> bool:
        listener = self._listener
        if listener is None or not listener.connected:
            return False
        try:
            await listener.fence()
        except ConnectionError as exc:
            _log.warning("read cache bypassed: %s", exc)
            return False
        return self.enabled

    def _notified(self, _channel: str, payload: str) -> None:
        team, sep, model = payload.partition("/")
        if sep:
            self.invalidate(team, model)

    def _on_connection(self, _up: bool) -> None:
        self.reset()
