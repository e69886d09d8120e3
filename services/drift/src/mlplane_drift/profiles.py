"""Reference profiles read from object storage, kept in memory per process.

A profile is stored once under a key of its own and never rewritten (a new reference
gets a new key), so a cached profile can never be stale: the cache only bounds memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from mlplane_drift.blobs import BlobStore
from mlplane_drift.profile import ReferenceProfile


class ProfileCache:
    def __init__(self, blobs: BlobStore, size: int) -> None:
        self._blobs = blobs
        self._size = size
        self._cached: OrderedDict[str, ReferenceProfile] = OrderedDict()
        self._loading: dict[str, asyncio.Future[ReferenceProfile]] = {}

    def remember(self, uri: str, profile: ReferenceProfile) -> None:
        """Keep a profile just stored under `uri` (no need to read it back)."""
        self._cached[uri] = profile
        self._cached.move_to_end(uri)
        while len(self._cached) > self._size:
            self._cached.popitem(last=False)

    async def load(self, uri: str) -> ReferenceProfile:
        """The profile at `uri`. Raises `BlobNotFound`, `Unavailable`, `CorruptSummary`."""
        found = self._cached.get(uri)
        if found is not None:
            self._cached.move_to_end(uri)
            return found
        pending = self._loading.get(uri)
        if pending is not None:  # another request reads it now: wait for that one
            return await asyncio.shield(pending)
        future: asyncio.Future[ReferenceProfile] = asyncio.get_running_loop().create_future()
        self._loading[uri] = future
        try:
            blob = await self._blobs.get(uri)
            profile = await asyncio.to_thread(ReferenceProfile.from_bytes, blob)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._loading.pop(uri, None)
        future.set_result(profile)
        self.remember(uri, profile)
        return profile
