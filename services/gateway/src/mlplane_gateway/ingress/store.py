"""All SQL of ingress: webhook secret nonces and the deliveries received (`IngressStore`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_gateway.tables import GatewayTables


class IngressStore:
    """Webhook secret nonces and received deliveries over one unit of work's session."""

    def __init__(self, session: AsyncSession, tables: GatewayTables) -> None:
        self._session = session
        self._tables = tables

    # -- webhook secrets ----------------------------------------------------------------

    async def set_webhook_nonce(self, team: str, nonce: str, created_by: str) -> None:
        table = self._tables.webhook_secrets
        statement = insert(table).values(team=team, nonce=nonce, created_by=created_by)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.team],
                set_={"nonce": nonce, "created_by": created_by, "created_at": func.now()},
            )
        )

    async def webhook_nonce(self, team: str) -> str | None:
        table = self._tables.webhook_secrets
        nonce = await self._session.scalar(select(table.c.nonce).where(table.c.team == team))
        return None if nonce is None else str(nonce)

    # -- deliveries ---------------------------------------------------------------------

    async def record_delivery(
        self, team: str, provider: str, delivery_id: str
    ) -> FirstDelivery | None:
        """Record a delivery; None when new, else its first arrival.

        A concurrent transaction recording the same delivery makes this wait for it
        (the primary key): if that one commits this is a duplicate, if it rolls
        back this one is new. Two arrivals never both count as new.
        """
        table = self._tables.deliveries
        statement = (
            insert(table)
            .values(team=team, provider=provider, delivery_id=delivery_id)
            .on_conflict_do_nothing()
            .returning(table.c.delivery_id)
        )
        if (await self._session.execute(statement)).first() is not None:
            return None
        row = (
            await self._session.execute(
                select(table.c.event_id, table.c.received_at).where(
                    *_delivery(table, team, provider, delivery_id)
                )
            )
        ).first()
        if row is None:  # deleted since (pruned): count it as a duplicate all the same
            return FirstDelivery(event_id=None, received_at=None)
        return FirstDelivery(event_id=row.event_id, received_at=row.received_at)

    async def set_delivery_event(
        self, team: str, provider: str, delivery_id: str, event_id: str
    ) -> None:
        table = self._tables.deliveries
        await self._session.execute(
            update(table)
            .where(*_delivery(table, team, provider, delivery_id))
            .values(event_id=event_id)
        )


@dataclass(frozen=True, slots=True)
class FirstDelivery:
    event_id: str | None
    received_at: datetime | None


def _delivery(table: Table, team: str, provider: str, delivery_id: str) -> list[Any]:
    return [
        table.c.team == team,
        table.c.provider == provider,
        table.c.delivery_id == delivery_id,
    ]
