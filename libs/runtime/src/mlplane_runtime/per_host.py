"""State a service plug-in builds once per hosting context, when the host first asks.

Deprecated: a plug-in with `build(context) -> ServiceParts` is built once per hosting
by the host and needs no cache. Kept for the services still on the deprecated
`ServicePlugin` factories; removed once they all have a `build`.

A plug-in is created at import (entry-point discovery), but its settings, adapters
and workers belong to each host that runs it (tests host the same plug-in several
times). The host calls the plug-in's factories (handlers, routers, lifespan) with
its `ServiceContext`; `PerHost` gives all of them the one state built for that
context, and forgets it when the lifespan ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from mlplane_runtime.service import ServiceContext

T = TypeVar("T")


class PerHost(Generic[T]):
    """`state = PerHost(build)`; `state(context)` builds on first use, then returns the same."""

    def __init__(self, build: Callable[[ServiceContext], T]) -> None:
        self._build = build
        # Keyed by the context's identity: contexts are plain dataclasses, not hashable.
        self._states: dict[int, T] = {}

    def __call__(self, context: ServiceContext) -> T:
        found = self._states.get(id(context))
        if found is None:
            found = self._states[id(context)] = self._build(context)
        return found

    def forget(self, context: ServiceContext) -> T | None:
        """Drop the context's state (at the end of its lifespan); the state, if it had one."""
        return self._states.pop(id(context), None)
