"""The FastAPI side of authentication: credentials from the request, a scope per route.

A route takes its caller from `Depends(guard.admits(Scope.X))` and marks the same
scope in its OpenAPI operation (`openapi_extra=Guard.doc(Scope.X)`); the
auth-matrix test walks those marks and proves each route refuses a caller without
that scope and admits one with it, so the two cannot drift apart.
"""

# No `from __future__ import annotations`: FastAPI resolves these annotations at runtime.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from mlplane_runtime.caller import Caller, CallerDependency

from mlplane_gateway.authentication import Gatekeeper
from mlplane_gateway.domain.principals import Principal, Scope

SCOPE_EXTENSION = "x-mlplane-scope"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An mlplane API key (`mlp_...`) or an OIDC access token (JWT).",
)
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="apiKey")

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
ApiKeyHeader = Annotated[str | None, Depends(_api_key)]


def _client_address(request: Request) -> str | None:
    """The peer's address (not X-Forwarded-For, which the client writes itself)."""
    return request.client.host if request.client is not None else None


class Guard:
    def __init__(self, gatekeeper: Gatekeeper) -> None:
        self.gatekeeper = gatekeeper
        self._dependencies: dict[Scope, Callable[..., Awaitable[Principal]]] = {}

    @staticmethod
    def doc(scope: Scope) -> dict[str, Any]:
        """The route's OpenAPI mark (pass as `openapi_extra`)."""
        return {SCOPE_EXTENSION: scope.value}

    def admits(self, scope: Scope) -> Callable[..., Awaitable[Principal]]:
        """The dependency giving the caller of a route that needs `scope`:
        `Annotated[Principal, Depends(guard.admits(scope))]`."""
        found = self._dependencies.get(scope)
        if found is not None:
            return found
        gatekeeper = self.gatekeeper

        async def admitted(request: Request, bearer: Bearer, api_key: ApiKeyHeader) -> Principal:
            token = bearer.credentials if bearer is not None else api_key
            return await gatekeeper.admit(token, scope, _client_address(request))

        self._dependencies[scope] = admitted
        return admitted

    def authenticated(self) -> Callable[..., Awaitable[Principal]]:
        """The dependency giving the authenticated, rate-limited caller, scope not yet
        checked: for routes whose scope depends on the request (the facade); they call
        `require_scope` once they know it."""
        gatekeeper = self.gatekeeper

        async def authenticated(
            request: Request, bearer: Bearer, api_key: ApiKeyHeader
        ) -> Principal:
            token = bearer.credentials if bearer is not None else api_key
            return await gatekeeper.enter(token, _client_address(request))

        return authenticated

    def request_caller(self) -> Callable[[Request], Awaitable[Principal]]:
        """What `authenticated` gives, taken from the request by a plain call: for the
        facade's hot path, where FastAPI's dependency solving was a tenth of a call's
        cost. The same header parsing (FastAPI's own schemes, called directly)."""
        gatekeeper = self.gatekeeper

        async def caller(request: Request) -> Principal:
            bearer = await _bearer(request)
            token = bearer.credentials if bearer is not None else await _api_key(request)
            return await gatekeeper.enter(token, _client_address(request))

        return caller

    def runtime_caller(self) -> CallerDependency:
        """The authenticated caller as the runtime's routes take it (the gateway's own
        dead-letter API): its team, id and scopes."""
        authenticated = self.authenticated()

        async def caller(principal: Annotated[Principal, Depends(authenticated)]) -> Caller:
            scopes = frozenset(scope.value for scope in principal.scopes)
            return Caller(team=principal.team, principal=principal.id, scopes=scopes)

        return caller

    @staticmethod
    def require_scope(caller: object, scope: str) -> None:
        """Raises Forbidden (403) unless `caller` (a Principal `authenticated` gave)
        holds `scope` (a Scope's value)."""
        if not isinstance(caller, Principal):
            raise TypeError(f"not an authenticated principal: {type(caller).__name__}")
        Gatekeeper.check_scope(caller, Scope(scope))
