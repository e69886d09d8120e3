"""Small HTTP servers the OCI tests run on 127.0.0.1: a proxy in front of the real
registry that can fail or corrupt chosen calls, and stand-ins for behaviours the real
registry cannot be made to show (429, Basic auth without bcrypt)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from mlplane_testing.http_server import free_port
from starlette.requests import Request
from starlette.responses import Response

START_TIMEOUT_S = 10.0
HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-encoding"}

AsgiApp = Callable[[Any, Any, Any], Any]


@contextlib.contextmanager
def serve(app: AsgiApp) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free port; yields its URL."""
    port = free_port()
    # log_config=None: uvicorn's own logging config would take its loggers away from
    # the JSON handler for the rest of the test session.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)


Rule = Callable[[Request], Response | None]


@dataclass
class RegistryProxy:
    """Forwards to `upstream`, unless a rule answers first; `corrupt` flips a byte of
    what matching GETs return. Forwards the Host header so the registry's Location
    headers point back at the proxy."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    corrupt: Callable[[Request], bool] = lambda request: False
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        self.calls.append((request.method, request.url.path))
        response = None
        for rule in self.rules:
            response = rule(request)
            if response is not None:
                break
        if response is None:
            response = await self._forward(request)
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        target = f"{self.upstream}{request.url.path}"
        if request.url.query:
            target += f"?{request.url.query}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with httpx.AsyncClient() as upstream:
            answer = await upstream.request(request.method, target, headers=headers, content=body)
        content = answer.content
        if content and self.corrupt(request):
            content = bytes([content[0] ^ 0xFF]) + content[1:]
        passed = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(content, status_code=answer.status_code, headers=passed)


def fail_first(method: str, times: int = 1, status: int = 503) -> Rule:
    """A rule answering `status` to the first `times` requests of `method`."""
    left = [times]

    def rule(request: Request) -> Response | None:
        if request.method == method and left[0] > 0:
            left[0] -= 1
            return Response(b'{"errors":[{"code":"UNAVAILABLE","message":"test"}]}', status)
        return None

    return rule
