"""Rendering of the gateway's errors that need response headers.

The platform's handler renders any `MlplaneError` as problem+json but knows no
headers; the gateway's 401 needs `WWW-Authenticate` and its 429 `Retry-After`.
Its routes use `GatewayRoute`, which renders `GatewayError`s with their headers
(raised in a dependency or in the endpoint alike).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from mlplane_runtime.problem import ProblemResponse

from mlplane_gateway.errors import GatewayError


class GatewayRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except GatewayError as exc:
                return ProblemResponse(
                    exc.problem(instance=request.url.path),
                    status_code=exc.status,
                    headers=exc.headers,
                )

        return handle
