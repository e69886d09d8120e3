"""Subscription use cases. Each takes a unit of work and never commits it: the route does.

Teams are tenants: a caller sees and changes its own team's subscriptions only;
another team's is "not found" (its existence does not leak). The operator (no
team) acts for every team and names the team a new subscription is for.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mlplane_runtime.errors import Conflict, InvalidInput, NotFound
from mlplane_runtime.uow import UnitOfWork

from mlplane_gateway.auth.principals import Principal
from mlplane_gateway.subscriptions.domain import (
    ContentMode,
    DeliveryStatus,
    InvalidSink,
    Subscription,
    check_type_prefixes,
)
from mlplane_gateway.subscriptions.store import DeliveryRecord, SubscriptionStore
from mlplane_gateway.subscriptions.tables import SubscriptionTables

SinkCheck = Callable[[str], Awaitable[object]]
SECRET_BYTES = 32
DEFAULT_MAX_PER_TEAM = 25


class SubscriptionNotFound(NotFound):
    pass


class DeliveryNotFound(NotFound):
    pass


class SubscriptionLimitReached(Conflict):
    """The team has as many subscriptions as it may: one must go before another comes."""

    def __init__(self, team: str, limit: int) -> None:
        super().__init__(
            f"team {team} has {limit} subscriptions, the most a team may have;"
            " delete one before creating another",
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """What a caller asks for; `team` is needed only from the operator."""

    sink_url: str
    types: Sequence[str]
    subject_prefix: str | None
    mode: ContentMode
    team: str | None = None


def new_subscription_id() -> str:
    return f"sub_{secrets.token_hex(8)}"


def new_signing_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(SECRET_BYTES)}"


class SubscriptionService:
    def __init__(
        self,
        uow: UnitOfWork,
        tables: SubscriptionTables,
        *,
        max_per_team: int = DEFAULT_MAX_PER_TEAM,
    ) -> None:
        self._store = SubscriptionStore(uow.session, tables)
        self._max_per_team = max_per_team

    async def create(
        self, actor: Principal, request: NewSubscription, check_sink: SinkCheck, now: datetime
    ) -> Subscription:
        """A new subscription of the actor's team, its secret in it (shown once).

        Raises InvalidSink (422, `field` sink_url) for a sink that may not be
        called, InvalidInput for bad filters or a missing team (operator),
        NotFound for a team the actor does not act for, SubscriptionLimitReached
        (409) when the team already has `max_per_team` subscriptions (counted under
        the team's lock, held until the unit of work ends: concurrent creates
        cannot pass the limit together).
        """
        team = request.team if actor.team is None else actor.team
        if team is None:
            raise InvalidInput("the operator names the team a subscription is for", field="team")
        if not actor.acts_for(team) or (request.team is not None and request.team != team):
            raise NotFound(f"no team {request.team}")
        try:
            await check_sink(request.sink_url)
        except InvalidSink as exc:
            raise InvalidSink(exc.detail, field="sink_url") from None
        subscription = Subscription(
            id=new_subscription_id(),
            team=team,
            sink_url=request.sink_url,
            types=check_type_prefixes(request.types),
            subject_prefix=request.subject_prefix,
            secret=new_signing_secret(),
            created_at=now,
            mode=request.mode,
        )
        # Counted after the slow sink check, so the team's lock is held only briefly.
        if await self._store.count_of_team_locked(team) >= self._max_per_team:
            raise SubscriptionLimitReached(team, self._max_per_team)
        await self._store.add(subscription, actor.id)
        return subscription

    async def of_team(self, actor: Principal, team: str | None) -> list[Subscription]:
        """The team's subscriptions (the actor's own team when None), oldest first."""
        wanted = team if team is not None else actor.team
        if wanted is None:
            raise InvalidInput("the operator names the team to list", field="team")
        if not actor.acts_for(wanted):
            raise NotFound(f"no team {wanted}")
        return await self._store.of_team(wanted)

    async def get(self, actor: Principal, subscription_id: str) -> Subscription:
        """SubscriptionNotFound when it does not exist or is another team's."""
        found = await self._store.find(subscription_id)
        if found is None or not actor.acts_for(found.team):
            raise SubscriptionNotFound(f"no subscription {subscription_id}")
        return found

    async def delete(self, actor: Principal, subscription_id: str) -> None:
        """Delete it with its deliveries; SubscriptionNotFound as `get`."""
        found = await self.get(actor, subscription_id)
        await self._store.remove(found.team, found.id)

    async def deliveries(
        self,
        actor: Principal,
        subscription_id: str,
        status: DeliveryStatus | None,
        limit: int,
    ) -> list[DeliveryRecord]:
        """Its delivery log, newest first (`status` DEAD: its dead letters)."""
        found = await self.get(actor, subscription_id)
        return await self._store.deliveries(found.id, status, limit)

    async def redeliver(self, actor: Principal, subscription_id: str, delivery_id: int) -> None:
        """A dead letter due again now; DeliveryNotFound when it is not one of its dead letters."""
        found = await self.get(actor, subscription_id)
        if not await self._store.redeliver(found.id, delivery_id):
            raise DeliveryNotFound(f"no dead letter {delivery_id} in subscription {found.id}")
