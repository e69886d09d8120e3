"""The FastAPI side of authentication: credentials from the request, a scope per route.

A route takes its caller from one of the aliases in `mlplane_gateway.deps` (`Admin`,
`Publisher`, `Subscriber`, `Authenticated`), which reach this hosting's `Guard` through
the gateway's resources, and marks the same scope in its OpenAPI operation
(`openapi_extra=Guard.doc(Scope.X)`); the auth-matrix test walks those marks and proves
each route refuses a caller without that scope and admits one with it, so the two
cannot drift apart.
"""

# No `from __future__ import annotations`: FastAPI resolves these annotations at runtime.
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from mlplane_runtime.caller import Caller, CallerDependency

from mlplane_gateway.auth.authentication import Gatekeeper
from mlplane_gateway.auth.principals import Principal, Scope

SCOPE_EXTENSION = "x-mlplane-scope"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An mlplane API key (`mlp_...`) or an OIDC access token (JWT).",
)
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="apiKey")

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
ApiKeyHeader = Annotated[str | None, Depends(_api_key)]


def client_address(request: Request) -> str | None:
    """The peer's address (not X-Forwarded-For, which the client writes itself)."""
    return request.client.host if request.client is not None else None


class Guard:
    """Authenticates and rate-limits a request's caller (`Gatekeeper`), then checks scopes."""

    def __init__(self, gatekeeper: Gatekeeper) -> None:
        self.gatekeeper = gatekeeper

    @staticmethod
    def doc(scope: Scope) -> dict[str, Any]:
        """The route's OpenAPI mark (pass as `openapi_extra`)."""
        return {SCOPE_EXTENSION: scope.value}

    async def admit(
        self,
        request: Request,
        bearer: HTTPAuthorizationCredentials | None,
        api_key: str | None,
        scope: Scope,
    ) -> Principal:
        """The caller of a route that needs `scope`, from the credential FastAPI's schemes
        parsed. Raises Unauthenticated (401), RateLimited (429), RateLimiterUnavailable
        (503) or Forbidden (403)."""
        token = bearer.credentials if bearer is not None else api_key
        return await self.gatekeeper.admit(token, scope, client_address(request))

    async def enter(
        self, request: Request, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
    ) -> Principal:
        """The authenticated, rate-limited caller, scope not yet checked: for routes whose
        scope depends on the request; they call `require_scope` once they know it."""
        token = bearer.credentials if bearer is not None else api_key
        return await self.gatekeeper.enter(token, client_address(request))

    async def request_caller(self, request: Request) -> Principal:
        """What `enter` gives, taken from the request by a plain call: for the facade's hot
        path, where FastAPI's dependency solving was a tenth of a call's cost. The same
        header parsing (FastAPI's own schemes, called directly)."""
        bearer = await _bearer(request)
        api_key = None if bearer is not None else await _api_key(request)
        return await self.enter(request, bearer, api_key)

    def runtime_caller(self) -> CallerDependency:
        """The authenticated caller as the runtime's routes take it (the gateway's own
        dead-letter API): its team, id and scopes."""
        # The runtime mounts its dead-letter API without the gateway's resources: this
        # dependency closes over the guard instead of reaching it through the request.
        guard = self

        async def authenticated(
            request: Request, bearer: Bearer, api_key: ApiKeyHeader
        ) -> Principal:
            return await guard.enter(request, bearer, api_key)

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
