"""PerHost: one state per hosting context, built on first use, forgotten on request."""

from __future__ import annotations

from typing import Any, cast

from mlplane_runtime.per_host import PerHost
from mlplane_runtime.service import ServiceContext


def context() -> ServiceContext:
    # Only the context's identity matters here; the fields are never read.
    return cast(ServiceContext, object())


def test_each_context_gets_its_own_state_built_once() -> None:
    built: list[Any] = []

    def build(ctx: ServiceContext) -> list[Any]:
        built.append(ctx)
        return [ctx]

    state = PerHost(build)
    first, second = context(), context()
    assert state(first) is state(first)
    assert state(second) is not state(first)
    assert built == [first, second]


def test_a_forgotten_context_is_built_anew() -> None:
    state = PerHost(lambda ctx: object())
    ctx = context()
    before = state(ctx)
    assert state.forget(ctx) is before
    assert state.forget(ctx) is None
    assert state(ctx) is not before
