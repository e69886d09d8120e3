"""MLflow webhooks as subscriptions: the use cases behind `/api/2.0/mlflow/webhooks`.

An MLflow webhook is a subscription of the caller's team in mode `mlflow`: its
sink is the webhook's URL (checked as every sink is), its types are the platform
events its MLflow events are made from, its secret the one MLflow's caller gave
(or a fresh one: MLflow never shows it back). Deliveries are the subscriptions'
(durable, retried, dead-lettered); only their wire format is MLflow's. Like every
use case, none commits: the route's unit of work does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.uow import UnitOfWork

from mlplane_gateway.auth.principals import Principal
from mlplane_gateway.subscriptions.domain import ContentMode, InvalidSink, Subscription
from mlplane_gateway.subscriptions.mlflow import (
    KNOWN_ACTIONS,
    KNOWN_ENTITIES,
    SERVED_EVENTS,
    event_name,
    types_for,
)
from mlplane_gateway.subscriptions.service import (
    DEFAULT_MAX_PER_TEAM,
    SinkCheck,
    SubscriptionLimitReached,
    SubscriptionNotFound,
    new_signing_secret,
    new_subscription_id,
)
from mlplane_gateway.subscriptions.store import SubscriptionStore
from mlplane_gateway.subscriptions.tables import SubscriptionTables

MAX_NAME = 256
MAX_DESCRIPTION = 1000
MAX_SECRET = 1000
MAX_EVENTS = 20


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """What a create or update asks for; None: unchanged (update) or default (create)."""

    name: str | None = None
    url: str | None = None
    events: Sequence[tuple[str, str]] | None = None
    description: str | None = None
    secret: str | None = None
    active: bool | None = None


def check_events(events: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """MLflow's (entity, action) pairs as event names; InvalidInput for unknown ones and
    for those mlplane has no platform event for (naming the ones it serves)."""
    if not events:
        raise InvalidInput("a webhook needs at least one event", field="events")
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"a webhook takes at most {MAX_EVENTS} events", field="events")
    names: set[str] = set()
    for entity, action in events:
        name = event_name(entity, action)
        known_entity, _, known_action = name.partition(".")
        if known_entity not in KNOWN_ENTITIES or known_action not in KNOWN_ACTIONS:
            raise InvalidInput(f"'{name}' is not an MLflow webhook event", field="events")
        if name not in SERVED_EVENTS:
            raise InvalidInput(
                f"mlplane delivers no '{name}' events; it delivers "
                f"{', '.join(sorted(SERVED_EVENTS))}",
                field="events",
            )
        names.add(name)
    return tuple(sorted(names))


def _text(value: str | None, what: str, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters", field=what)
    return value


class MlflowWebhookService:
    """MLflow webhooks of the caller's team, on one unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        tables: SubscriptionTables,
        *,
        max_per_team: int = DEFAULT_MAX_PER_TEAM,
    ) -> None:
        self._store = SubscriptionStore(uow.session, tables)
        self._max_per_team = max_per_team

    @staticmethod
    def _team(actor: Principal) -> str:
        if actor.team is None:
            raise InvalidInput(
                "MLflow webhooks belong to a team: call with a team's API key", field="team"
            )
        return actor.team

    async def create(
        self, actor: Principal, change: WebhookChange, check_sink: SinkCheck, now: datetime
    ) -> Subscription:
        """A new webhook. Raises InvalidInput, InvalidSink, SubscriptionLimitReached."""
        team = self._team(actor)
        if not change.name:
            raise InvalidInput("Missing value for required parameter 'name'.", field="name")
        if not change.url:
            raise InvalidInput("Missing value for required parameter 'url'.", field="url")
        events = check_events(change.events or ())
        try:
            await check_sink(change.url)
        except InvalidSink as exc:
            raise InvalidSink(exc.detail, field="url") from None
        webhook = Subscription(
            id=new_subscription_id(),
            team=team,
            sink_url=change.url,
            types=types_for(events),
            subject_prefix=None,
            secret=_text(change.secret, "secret", MAX_SECRET) or new_signing_secret(),
            created_at=now,
            disabled=change.active is False,
            mode=ContentMode.MLFLOW,
            name=_text(change.name, "name", MAX_NAME),
            description=_text(change.description, "description", MAX_DESCRIPTION),
            mlflow_events=events,
            updated_at=now,
        )
        if await self._store.count_of_team_locked(team) >= self._max_per_team:
            raise SubscriptionLimitReached(team, self._max_per_team)
        await self._store.add(webhook, actor.id)
        return webhook

    async def of_team(self, actor: Principal) -> list[Subscription]:
        """The team's MLflow webhooks, newest first (as MLflow lists them)."""
        found = await self._store.of_team(self._team(actor))
        webhooks = [s for s in found if s.mode is ContentMode.MLFLOW]
        return sorted(webhooks, key=lambda s: (s.created_at, s.id), reverse=True)

    async def get(self, actor: Principal, webhook_id: str) -> Subscription:
        """SubscriptionNotFound when it is not one of the team's MLflow webhooks."""
        found = await self._store.find(webhook_id)
        if found is None or found.team != actor.team or found.mode is not ContentMode.MLFLOW:
            raise SubscriptionNotFound(f"Webhook with ID {webhook_id} not found.")
        return found

    async def update(
        self,
        actor: Principal,
        webhook_id: str,
        change: WebhookChange,
        check_sink: SinkCheck,
        now: datetime,
    ) -> Subscription:
        current = await self.get(actor, webhook_id)
        updated = current
        if change.url is not None and change.url != current.sink_url:
            try:
                await check_sink(change.url)
            except InvalidSink as exc:
                raise InvalidSink(exc.detail, field="url") from None
            updated = replace(updated, sink_url=change.url)
        if change.events:
            events = check_events(change.events)
            updated = replace(updated, mlflow_events=events, types=types_for(events))
        if change.name is not None:
            updated = replace(updated, name=_text(change.name, "name", MAX_NAME))
        if change.description is not None:
            updated = replace(
                updated, description=_text(change.description, "description", MAX_DESCRIPTION)
            )
        if change.secret:
            updated = replace(updated, secret=_text(change.secret, "secret", MAX_SECRET) or "")
        if change.active is not None:
            updated = replace(updated, disabled=not change.active)
        updated = replace(updated, updated_at=now)
        await self._store.replace(updated)
        return updated

    async def delete(self, actor: Principal, webhook_id: str) -> None:
        found = await self.get(actor, webhook_id)
        await self._store.remove(found.team, found.id)
