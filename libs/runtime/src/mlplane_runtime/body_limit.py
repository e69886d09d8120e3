"""A size limit on every request body, enforced while it streams in.

Every route accepts at most `DEFAULT_MAX_BODY_BYTES` unless it declares more with
`openapi_extra=max_body_bytes(n)` (the declaration shows in the OpenAPI document
as `x-mlplane-max-body-bytes`). A `Content-Length` above the limit is refused
before a byte of the body is read; a chunked body is counted as it arrives and
refused the moment it passes the limit. Either way the answer is 413
problem+json with `Connection: close`, so the server drops the rest of the body
instead of reading it.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""1 MiB: what every route accepts unless it declares otherwise."""

MAX_BODY_BYTES_EXTENSION: Final = "x-mlplane-max-body-bytes"
BODY_TOO_LARGE_PROBLEM_TYPE: Final = "https://mlplane.io/problems/body-too-large"


def max_body_bytes(limit: int) -> dict[str, Any]:
    """`openapi_extra` for a route that accepts bodies up to `limit` bytes.

    Merge it with the route's other `openapi_extra`: `{**max_body_bytes(n), ...}`.
    """
    if limit < 1:
        raise ValueError(f"a body limit must be at least 1 byte, got {limit}")
    return {MAX_BODY_BYTES_EXTENSION: limit}


class BodyTooLarge(HTTPException):
    """The request body passes its route's limit (413; the connection is closed after).

    A Starlette `HTTPException`, so FastAPI lets it through its body parsing
    unchanged and the problem handler renders it.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"the request body is larger than {limit} bytes",
            headers={"Connection": "close"},
        )
        self.limit = limit


def route_body_limit(scope: Scope, default: int) -> int:
    """The body limit of the route that `scope` was routed to, else `default`."""
    route = scope.get("route")
    extra = getattr(route, "openapi_extra", None)
    if isinstance(extra, dict):
        declared = extra.get(MAX_BODY_BYTES_EXTENSION)
        if isinstance(declared, int):
            return declared
    return default


class BodyLimitMiddleware:
    """Refuses request bodies larger than their route allows (see the module).

    The limit is looked up when the app first reads the body, by which time the
    router has put the matched route in the scope.
    """

    def __init__(self, app: ASGIApp, default_limit: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = None
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal limit, received
            if limit is None:
                limit = route_body_limit(scope, self.default_limit)
                declared = _content_length(scope)
                if declared is not None and declared > limit:
                    raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
