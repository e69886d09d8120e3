"""What the gateway's routes take from one hosting, as typed dependency aliases.

`main.build` makes a `HostedGateway` per hosting; the host binds it to each request of
the gateway's routes, and a route takes it as `gateway: Gateway`. The gateway
authenticates its callers itself: `Admin`, `Publisher`, `Subscriber`, `DeployWriter`
(the caller, holding that scope) and `Authenticated` (scope not yet checked) reach this
hosting's `Guard` through the same resources. The unit of work comes from `mlplane_runtime.deps`
(`WriteUow`, `ReadUow`).
"""

# No `from __future__ import annotations`: FastAPI resolves these annotations at import.
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork

from mlplane_gateway.auth.guard import ApiKeyHeader, Bearer, Guard
from mlplane_gateway.auth.principals import Principal, Scope
from mlplane_gateway.auth.wiring import GatewayAuth
from mlplane_gateway.facade.wiring import Facade
from mlplane_gateway.ingress.service import IngressService
from mlplane_gateway.keys.service import ApiKeyService
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions.service import SubscriptionService
from mlplane_gateway.subscriptions.wiring import Subscriptions
from mlplane_gateway.tables import GatewayTables


@dataclass(frozen=True, slots=True)
class HostedGateway:
    """One hosted gateway: its settings, tables (in its schema), door and adapters."""

    settings: GatewaySettings
    tables: GatewayTables
    auth: GatewayAuth
    subscriptions: Subscriptions
    facade: Facade

    @property
    def guard(self) -> Guard:
        return self.auth.guard

    def api_keys(self, uow: UnitOfWork) -> ApiKeyService:
        return ApiKeyService(uow, self.tables, self.settings.pepper())

    def ingress(self, uow: UnitOfWork) -> IngressService:
        return IngressService(uow, self.tables, self.settings.pepper())

    def subscription_service(self, uow: UnitOfWork) -> SubscriptionService:
        return SubscriptionService(
            uow, self.subscriptions.tables, max_per_team=self.subscriptions.max_per_team
        )

    def start(self) -> None:
        """Listen for key revocations and start delivering to subscribers."""
        self.auth.start()
        self.subscriptions.start()

    async def aclose(self) -> None:
        """Stop delivering (in-flight deliveries get their timeout), close every client."""
        await self.subscriptions.aclose()
        await self.auth.aclose()
        await self.facade.aclose()


Gateway = Annotated[HostedGateway, Depends(resources(HostedGateway))]


def admits(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """The dependency giving the caller of a route that needs `scope` (401, 429, 503 or
    403 otherwise). Use the aliases below: one dependency per scope."""

    async def admitted(
        request: Request, gateway: Gateway, bearer: Bearer, api_key: ApiKeyHeader
    ) -> Principal:
        return await gateway.guard.admit(request, bearer, api_key, scope)

    admitted.__name__ = f"admits_{scope.name.lower()}"
    return admitted


async def authenticated(
    request: Request, gateway: Gateway, bearer: Bearer, api_key: ApiKeyHeader
) -> Principal:
    """The authenticated, rate-limited caller, scope not yet checked (the route checks
    it with `Guard.require_scope` once it knows it)."""
    return await gateway.guard.enter(request, bearer, api_key)


Admin = Annotated[Principal, Depends(admits(Scope.ADMIN))]
Publisher = Annotated[Principal, Depends(admits(Scope.EVENTS_PUBLISH))]
DeployWriter = Annotated[Principal, Depends(admits(Scope.DEPLOY_WRITE))]
Subscriber = Annotated[Principal, Depends(admits(Scope.EVENTS_SUBSCRIBE))]
Authenticated = Annotated[Principal, Depends(authenticated)]
