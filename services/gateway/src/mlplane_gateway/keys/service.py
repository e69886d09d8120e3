"""API keys' use cases. Each takes a unit of work and never commits it: the request
scope does (`WriteUow`), or the first start's own transaction (`initial_admin`)."""

from __future__ import annotations

from datetime import datetime

from mlplane_runtime.uow import UnitOfWork

from mlplane_gateway.auth.principals import (
    ALL_SCOPES,
    Principal,
    PrincipalKind,
    Scope,
    require_own_team,
)
from mlplane_gateway.errors import ApiKeyNotFound, DuplicateKeyId, Forbidden
from mlplane_gateway.keys.domain import ApiKey, hash_key, new_key, new_key_id
from mlplane_gateway.keys.store import ApiKeyStore
from mlplane_gateway.tables import GatewayTables

_KEY_ID_ATTEMPTS = 5
INITIAL_ADMIN = Principal(
    kind=PrincipalKind.BOOTSTRAP, id="gateway:first-start", team=None, scopes=ALL_SCOPES
)
"""Who makes the initial admin key (its `created_by`)."""


class ApiKeyService:
    def __init__(self, uow: UnitOfWork, tables: GatewayTables, pepper: bytes) -> None:
        self._store = ApiKeyStore(uow.session, tables)
        self._pepper = pepper

    async def create_api_key(
        self,
        actor: Principal,
        team: str,
        name: str,
        scopes: frozenset[Scope],
        expires_at: datetime | None,
        now: datetime,
    ) -> tuple[ApiKey, str]:
        """A new key of `team` and its only plaintext copy.

        Raises NotFound when `actor` does not act for `team`, Forbidden when it would
        grant a scope it does not hold itself.
        """
        require_own_team(actor, team)
        extra = scopes - actor.scopes
        if extra:
            raise Forbidden(
                f"cannot grant scopes this credential lacks: {', '.join(sorted(extra))}"
            )
        for _ in range(_KEY_ID_ATTEMPTS):
            key_id = new_key_id()
            plaintext = new_key(key_id)
            key = ApiKey(
                id=key_id,
                team=team,
                name=name,
                scopes=scopes,
                created_by=actor.id,
                created_at=now,
                expires_at=expires_at,
                revoked_at=None,
                last_used_at=None,
                key_hash=hash_key(self._pepper, plaintext),
            )
            try:
                return await self._store.add_api_key(key), plaintext
            except DuplicateKeyId:
                continue  # 36^8 ids: two draws in a row colliding means something is wrong
        raise DuplicateKeyId("could not draw a free API key id")

    async def create_initial_admin_key(self, team: str, now: datetime) -> tuple[ApiKey, str] | None:
        """The first API key (every scope, of `team`) and its plaintext, or None when the
        gateway has had a key before (revoked or not): it is made once per database."""
        if not await self._store.lock_api_keys_for_first_key():
            return None
        return await self.create_api_key(
            INITIAL_ADMIN, team, "initial-admin", ALL_SCOPES, None, now
        )

    async def list_api_keys(self, actor: Principal, team: str | None, limit: int) -> list[ApiKey]:
        """Keys of `team` (the actor's own when None; every team's for the operator)."""
        if team is not None:
            require_own_team(actor, team)
        return await self._store.api_keys(team if team is not None else actor.team, limit)

    async def revoke_api_key(self, actor: Principal, key_id: str, now: datetime) -> ApiKey:
        """Revoke the key; ApiKeyNotFound when it does not exist or is another team's."""
        key = await self._store.api_key(key_id)
        if key is None or not actor.acts_for(key.team):
            raise ApiKeyNotFound(f"no API key {key_id}")
        revoked = await self._store.revoke_api_key(key_id, now)
        assert revoked is not None
        return revoked
