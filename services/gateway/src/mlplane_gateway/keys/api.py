"""Admin routes: API keys and team webhook secrets (scope `admin`)."""

# No `from __future__ import annotations`: FastAPI resolves the aliases built in `routers`.
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_gateway.domain.principals import Principal, Scope
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.schemas import KeyCreate, KeyCreated, KeyList, KeyOut, WebhookSecretOut
from mlplane_gateway.security import Guard
from mlplane_gateway.service import GatewayService
from mlplane_gateway.store import GatewayTables

TeamPath = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
KeyId = Annotated[str, Path(min_length=8, max_length=8, pattern=r"^[a-z0-9]{8}$")]


def _now() -> datetime:
    return datetime.now(UTC)


def router(
    tables: GatewayTables,
    uow_factory: UnitOfWorkFactory,
    guard: Guard,
    pepper: bytes,
    clock: Callable[[], datetime] = _now,
    *,
    on_revoked: Callable[[str], None] | None = None,
) -> APIRouter:
    """`on_revoked(key_id)` runs once a revocation is committed: this process's key cache
    forgets the key without waiting for the database's NOTIFY to come back."""
    router = APIRouter(prefix="/v1", tags=["admin"], route_class=GatewayRoute)

    async def unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory() as uow:
            yield uow

    Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
    Admin = Annotated[Principal, Depends(guard.admits(Scope.ADMIN))]
    admin_doc = guard.doc(Scope.ADMIN)

    @router.post("/keys", status_code=201, openapi_extra=admin_doc)
    async def create_key(body: KeyCreate, actor: Admin, uow: Uow) -> KeyCreated:
        """Create an API key for a team; the key is in this answer only."""
        key, plaintext = await GatewayService(uow, tables, pepper).create_api_key(
            actor, body.team, body.name, frozenset(body.scopes), body.expires_at, clock()
        )
        await uow.commit()
        return KeyCreated(**KeyOut.of(key).model_dump(), key=plaintext)

    @router.get("/keys", openapi_extra=admin_doc)
    async def list_keys(
        actor: Admin,
        uow: Uow,
        team: Annotated[str | None, Query(max_length=63, pattern=DNS_LABEL_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> KeyList:
        """The team's keys, newest first (never the keys themselves)."""
        keys = await GatewayService(uow, tables, pepper).list_api_keys(actor, team, limit)
        return KeyList(keys=[KeyOut.of(key) for key in keys])

    @router.delete("/keys/{key_id}", status_code=204, openapi_extra=admin_doc)
    async def revoke_key(key_id: KeyId, actor: Admin, uow: Uow) -> Response:
        """Revoke a key: its next request is refused."""
        await GatewayService(uow, tables, pepper).revoke_api_key(actor, key_id, clock())
        await uow.commit()
        if on_revoked is not None:
            on_revoked(key_id)
        return Response(status_code=204)

    @router.put("/teams/{team}/webhook-secret", openapi_extra=admin_doc)
    async def rotate_webhook_secret(team: TeamPath, actor: Admin, uow: Uow) -> WebhookSecretOut:
        """A new webhook secret for the team, in this answer only; the old one stops working."""
        secret = await GatewayService(uow, tables, pepper).rotate_webhook_secret(actor, team)
        await uow.commit()
        return WebhookSecretOut(team=team, secret=secret)

    return router
