"""`HEAD` on every `GET` route: the same status and headers, no body (RFC 9110 9.3.2).

FastAPI's routes answer only the methods they declare, so a `HEAD` on a `GET`
route was 405. A `HEAD` that no route takes as such is served by the `GET` route
instead and its body dropped; a route that declares `HEAD` itself (the gateway's
facade forwards it) keeps it.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _declares_head(routes: list[BaseRoute], scope: Scope) -> bool:
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


class HeadAsGetMiddleware:
    """Serves a `HEAD` no route declares with the `GET` route, without the body."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        # The app's own list: routes added later are seen too.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "HEAD"
            or _declares_head(self.routes, scope)
        ):
            await self.app(scope, receive, send)
            return
        body_sent = False

        async def send_without_body(message: Message) -> None:
            nonlocal body_sent
            if message["type"] != "http.response.body":
                await send(message)
            elif not body_sent:
                # The headers (Content-Length included) stay those of the GET.
                body_sent = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
