"""All SQL of API keys: `ApiKeyStore`, returning frozen `ApiKey`s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_gateway.auth.principals import parse_scopes
from mlplane_gateway.errors import DuplicateKeyId
from mlplane_gateway.keys.domain import ApiKey
from mlplane_gateway.tables import GatewayTables


class ApiKeyStore:
    """API keys over one unit of work's session."""

    def __init__(self, session: AsyncSession, tables: GatewayTables) -> None:
        self._session = session
        self._tables = tables

    async def add_api_key(self, key: ApiKey) -> ApiKey:
        """Store `key`; DuplicateKeyId when its id is taken (the caller draws another)."""
        table = self._tables.api_keys
        statement = (
            insert(table)
            .values(
                id=key.id,
                key_hash=key.key_hash,
                team=key.team,
                name=key.name,
                scopes=sorted(key.scopes),
                created_by=key.created_by,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
            .on_conflict_do_nothing(index_elements=[table.c.id])
            .returning(*table.c)
        )
        row = (await self._session.execute(statement)).mappings().first()
        if row is None:
            raise DuplicateKeyId(f"API key id {key.id} is taken")
        return _api_key(row)

    async def lock_api_keys_for_first_key(self) -> bool:
        """True when no API key was ever made (revoked ones count), holding a lock until
        the transaction ends so two gateways starting at once never both see none."""
        await self._session.execute(select(func.pg_advisory_xact_lock(_FIRST_KEY_LOCK)))
        table = self._tables.api_keys
        return (await self._session.scalar(select(table.c.id).limit(1))) is None

    async def api_key(self, key_id: str) -> ApiKey | None:
        table = self._tables.api_keys
        row = (
            (await self._session.execute(select(table).where(table.c.id == key_id)))
            .mappings()
            .first()
        )
        return None if row is None else _api_key(row)

    async def api_keys(self, team: str | None, limit: int) -> list[ApiKey]:
        """Keys of `team` (every team's when None), newest first."""
        table = self._tables.api_keys
        query = select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
        if team is not None:
            query = query.where(table.c.team == team)
        rows = (await self._session.execute(query)).mappings()
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` (a second revocation keeps the first time)."""
        table = self._tables.api_keys
        statement = (
            update(table)
            .where(table.c.id == key_id)
            .values(revoked_at=func.coalesce(table.c.revoked_at, at))
            .returning(*table.c)
        )
        row = (await self._session.execute(statement)).mappings().first()
        return None if row is None else _api_key(row)

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        table = self._tables.api_keys
        await self._session.execute(
            update(table).where(table.c.id == key_id).values(last_used_at=at)
        )


_FIRST_KEY_LOCK = 0x6D6C706C616E6531
"""An advisory lock id ("mlplane1"): held while the initial admin key is made."""


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        team=row["team"],
        name=row["name"],
        scopes=parse_scopes(row["scopes"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        key_hash=bytes(row["key_hash"]),
    )
