"""Subscription routes (scope `events:subscribe`): CRUD, delivery log, dead letters.

`POST /v1/subscriptions` checks the sink (resolved now: private, loopback and
similar addresses are refused unless allowlisted) and answers the signing
secret, once. Another team's subscription is 404.
"""

# No `from __future__ import annotations`: FastAPI resolves the aliases built in `router`.
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_gateway.domain.principals import Principal, Scope
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.security import Guard
from mlplane_gateway.subscriptions.domain import DeliveryStatus
from mlplane_gateway.subscriptions.schemas import (
    DeliveryList,
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionOut,
)
from mlplane_gateway.subscriptions.service import (
    DEFAULT_MAX_PER_TEAM,
    NewSubscription,
    SinkCheck,
    SubscriptionService,
)
from mlplane_gateway.subscriptions.tables import SubscriptionTables

SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^sub_[0-9a-f]+$")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _now() -> datetime:
    return datetime.now(UTC)


def router(
    tables: SubscriptionTables,
    uow_factory: UnitOfWorkFactory,
    guard: Guard,
    check_sink: SinkCheck,
    wake_dispatcher: Callable[[], None] = lambda: None,
    clock: Callable[[], datetime] = _now,
    max_per_team: int = DEFAULT_MAX_PER_TEAM,
) -> APIRouter:
    """The routes; `wake_dispatcher` is called when a redelivery is due now; a team
    has at most `max_per_team` subscriptions (one more: 409)."""
    router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"], route_class=GatewayRoute)

    async def unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory() as uow:
            yield uow

    async def reading_unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory.reading() as uow:
            yield uow

    Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
    Reads = Annotated[UnitOfWork, Depends(reading_unit_of_work)]
    Subscriber = Annotated[Principal, Depends(guard.admits(Scope.EVENTS_SUBSCRIBE))]
    doc = guard.doc(Scope.EVENTS_SUBSCRIBE)

    @router.post("", status_code=201, openapi_extra=doc)
    async def create_subscription(
        body: SubscriptionCreate, actor: Subscriber, uow: Uow
    ) -> SubscriptionCreated:
        """Subscribe a sink to the team's events; the signing secret is in this answer only."""
        subscription = await SubscriptionService(uow, tables, max_per_team=max_per_team).create(
            actor,
            NewSubscription(
                sink_url=body.sink,
                types=body.types,
                subject_prefix=body.subject_prefix,
                mode=body.protocol_settings.content_mode,
                team=body.team,
            ),
            check_sink,
            clock(),
        )
        await uow.commit()
        return SubscriptionCreated(
            **SubscriptionOut.of(subscription).model_dump(), secret=subscription.secret
        )

    @router.get("", openapi_extra=doc)
    async def list_subscriptions(
        actor: Subscriber,
        uow: Reads,
        team: Annotated[str | None, Query(max_length=63, pattern=DNS_LABEL_PATTERN)] = None,
    ) -> SubscriptionList:
        """The team's subscriptions (never their secrets)."""
        found = await SubscriptionService(uow, tables).of_team(actor, team)
        return SubscriptionList(subscriptions=[SubscriptionOut.of(s) for s in found])

    @router.get("/{subscription_id}", openapi_extra=doc)
    async def get_subscription(
        subscription_id: SubscriptionId, actor: Subscriber, uow: Reads
    ) -> SubscriptionOut:
        return SubscriptionOut.of(
            await SubscriptionService(uow, tables).get(actor, subscription_id)
        )

    @router.delete("/{subscription_id}", status_code=204, openapi_extra=doc)
    async def delete_subscription(
        subscription_id: SubscriptionId, actor: Subscriber, uow: Uow
    ) -> Response:
        """Stop deliveries: the subscription, its log and dead letters are deleted."""
        await SubscriptionService(uow, tables).delete(actor, subscription_id)
        await uow.commit()
        return Response(status_code=204)

    @router.get("/{subscription_id}/deliveries", openapi_extra=doc)
    async def list_deliveries(
        subscription_id: SubscriptionId,
        actor: Subscriber,
        uow: Reads,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        limit: Limit = 100,
    ) -> DeliveryList:
        """The delivery log, newest first: each delivery's status and its last attempts."""
        found = await SubscriptionService(uow, tables).deliveries(
            actor, subscription_id, status, limit
        )
        return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found])

    @router.get("/{subscription_id}/dead-letters", openapi_extra=doc)
    async def list_dead_letters(
        subscription_id: SubscriptionId, actor: Subscriber, uow: Reads, limit: Limit = 100
    ) -> DeliveryList:
        """Deliveries given up (after the last retry, or refused by the sink with a 4xx)."""
        found = await SubscriptionService(uow, tables).deliveries(
            actor, subscription_id, DeliveryStatus.DEAD, limit
        )
        return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found])

    @router.post(
        "/{subscription_id}/dead-letters/{delivery_id}/redeliver",
        status_code=202,
        openapi_extra=doc,
    )
    async def redeliver(
        subscription_id: SubscriptionId, delivery_id: DeliveryId, actor: Subscriber, uow: Uow
    ) -> Response:
        """Deliver a dead letter again, now, with a fresh count of attempts."""
        await SubscriptionService(uow, tables).redeliver(actor, subscription_id, delivery_id)
        await uow.commit()
        wake_dispatcher()
        return Response(status_code=202)

    return router
