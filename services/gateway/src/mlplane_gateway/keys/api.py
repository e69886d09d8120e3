"""Admin routes of API keys (scope `admin`): create, list, revoke.

A change commits when its route returns (`WriteUow`), before the answer is sent; a
revocation, once committed, is dropped from this process's key cache at once (other
gateways drop it on the database's NOTIFY).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.deps import ReadUow, WriteUow

from mlplane_gateway.auth.guard import Guard
from mlplane_gateway.auth.principals import Scope
from mlplane_gateway.deps import Admin, Gateway
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyOut

KeyId = Annotated[str, Path(min_length=8, max_length=8, pattern=r"^[a-z0-9]{8}$")]
ADMIN_DOC = Guard.doc(Scope.ADMIN)

router = APIRouter(prefix="/v1", tags=["admin"], route_class=GatewayRoute)


@router.post("/keys", status_code=201, openapi_extra=ADMIN_DOC)
async def create_key(body: KeyCreate, actor: Admin, gateway: Gateway, uow: WriteUow) -> KeyCreated:
    """Create an API key for a team; the key is in this answer only."""
    key, plaintext = await gateway.api_keys(uow).create_api_key(
        actor, body.team, body.name, frozenset(body.scopes), body.expires_at, _now()
    )
    return KeyCreated(**KeyOut.of(key).model_dump(), key=plaintext)


@router.get("/keys", openapi_extra=ADMIN_DOC)
async def list_keys(
    actor: Admin,
    gateway: Gateway,
    uow: ReadUow,
    team: Annotated[str | None, Query(max_length=63, pattern=DNS_LABEL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> KeyList:
    """The team's keys, newest first (never the keys themselves)."""
    keys = await gateway.api_keys(uow).list_api_keys(actor, team, limit)
    return KeyList(keys=[KeyOut.of(key) for key in keys])


@router.delete("/keys/{key_id}", status_code=204, openapi_extra=ADMIN_DOC)
async def revoke_key(key_id: KeyId, actor: Admin, gateway: Gateway, uow: WriteUow) -> Response:
    """Revoke a key: its next request is refused."""
    await gateway.api_keys(uow).revoke_api_key(actor, key_id, _now())
    uow.after_commit(lambda: gateway.auth.forget_key(key_id))
    return Response(status_code=204)


def _now() -> datetime:
    return datetime.now(UTC)
