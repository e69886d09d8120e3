"""Subscription routes (scope `events:subscribe`): CRUD, delivery log, dead letters, and
`GET /v1/events/stream`, the team's events as server-sent events (see `stream`).

`POST /v1/subscriptions` checks the sink (resolved now: private, loopback and
similar addresses are refused unless allowlisted) and answers the signing
secret, once. Another team's subscription is 404. A change commits when its route
returns (`WriteUow`); a redelivery wakes the dispatcher once committed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.deps import ReadUow, WriteUow
from starlette.responses import StreamingResponse

from mlplane_gateway.auth.guard import Guard
from mlplane_gateway.auth.principals import Scope
from mlplane_gateway.deps import Authenticated, Gateway, Subscriber
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.subscriptions.domain import DeliveryStatus, EventFilter, check_type_prefixes
from mlplane_gateway.subscriptions.schemas import (
    DeliveryList,
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionOut,
)
from mlplane_gateway.subscriptions.service import NewSubscription
from mlplane_gateway.subscriptions.stream import parse_last_event_id, sse_frames

SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^sub_[0-9a-f]+$")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]
DOC = Guard.doc(Scope.EVENTS_SUBSCRIBE)

router = APIRouter(prefix="/v1", route_class=GatewayRoute)


@router.post("/subscriptions", status_code=201, tags=["subscriptions"], openapi_extra=DOC)
async def create_subscription(
    body: SubscriptionCreate, actor: Subscriber, gateway: Gateway, uow: WriteUow
) -> SubscriptionCreated:
    """Subscribe a sink to the team's events; the signing secret is in this answer only."""
    subscription = await gateway.subscription_service(uow).create(
        actor,
        NewSubscription(
            sink_url=body.sink,
            types=body.types,
            subject_prefix=body.subject_prefix,
            mode=body.protocol_settings.content_mode,
            team=body.team,
        ),
        gateway.subscriptions.sink_checker,
        datetime.now(UTC),
    )
    return SubscriptionCreated(
        **SubscriptionOut.of(subscription).model_dump(), secret=subscription.secret
    )


@router.get("/subscriptions", tags=["subscriptions"], openapi_extra=DOC)
async def list_subscriptions(
    actor: Subscriber,
    gateway: Gateway,
    uow: ReadUow,
    team: Annotated[str | None, Query(max_length=63, pattern=DNS_LABEL_PATTERN)] = None,
) -> SubscriptionList:
    """The team's subscriptions (never their secrets)."""
    found = await gateway.subscription_service(uow).of_team(actor, team)
    return SubscriptionList(subscriptions=[SubscriptionOut.of(s) for s in found])


@router.get("/subscriptions/{subscription_id}", tags=["subscriptions"], openapi_extra=DOC)
async def get_subscription(
    subscription_id: SubscriptionId, actor: Subscriber, gateway: Gateway, uow: ReadUow
) -> SubscriptionOut:
    return SubscriptionOut.of(await gateway.subscription_service(uow).get(actor, subscription_id))


@router.delete(
    "/subscriptions/{subscription_id}", status_code=204, tags=["subscriptions"], openapi_extra=DOC
)
async def delete_subscription(
    subscription_id: SubscriptionId, actor: Subscriber, gateway: Gateway, uow: WriteUow
) -> Response:
    """Stop deliveries: the subscription, its log and dead letters are deleted."""
    await gateway.subscription_service(uow).delete(actor, subscription_id)
    return Response(status_code=204)


@router.get(
    "/subscriptions/{subscription_id}/deliveries", tags=["subscriptions"], openapi_extra=DOC
)
async def list_deliveries(
    subscription_id: SubscriptionId,
    actor: Subscriber,
    gateway: Gateway,
    uow: ReadUow,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = 100,
) -> DeliveryList:
    """The delivery log, newest first: each delivery's status and its last attempts."""
    found = await gateway.subscription_service(uow).deliveries(
        actor, subscription_id, status, limit
    )
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found])


@router.get(
    "/subscriptions/{subscription_id}/dead-letters", tags=["subscriptions"], openapi_extra=DOC
)
async def list_dead_letters(
    subscription_id: SubscriptionId,
    actor: Subscriber,
    gateway: Gateway,
    uow: ReadUow,
    limit: Limit = 100,
) -> DeliveryList:
    """Deliveries given up (after the last retry, or refused by the sink with a 4xx)."""
    found = await gateway.subscription_service(uow).deliveries(
        actor, subscription_id, DeliveryStatus.DEAD, limit
    )
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found])


@router.post(
    "/subscriptions/{subscription_id}/dead-letters/{delivery_id}/redeliver",
    status_code=202,
    tags=["subscriptions"],
    openapi_extra=DOC,
)
async def redeliver(
    subscription_id: SubscriptionId,
    delivery_id: DeliveryId,
    actor: Subscriber,
    gateway: Gateway,
    uow: WriteUow,
) -> Response:
    """Deliver a dead letter again, now, with a fresh count of attempts."""
    await gateway.subscription_service(uow).redeliver(actor, subscription_id, delivery_id)
    uow.after_commit(gateway.subscriptions.dispatcher.wake)
    return Response(status_code=202)


@router.get(
    "/events/stream",
    tags=["events"],
    summary="Platform events as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    openapi_extra=DOC,
)
async def stream(
    caller: Authenticated,
    gateway: Gateway,
    type_prefix: Annotated[list[str] | None, Query(max_length=20)] = None,
    subject_prefix: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The caller's team's events (the operator's: every team's), resumable with
    `Last-Event-ID`; filters as for subscriptions."""
    # Checked here, after the parameters are validated, as the facade checks its scopes.
    Guard.require_scope(caller, Scope.EVENTS_SUBSCRIBE.value)
    event_filter = EventFilter(
        team=caller.team,
        types=check_type_prefixes(type_prefix or ()),
        subject_prefix=subject_prefix,
    )
    frames = sse_frames(
        gateway.subscriptions.events,
        event_filter,
        parse_last_event_id(last_event_id),
        keepalive_s=gateway.settings.stream_keepalive_s,
    )
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
