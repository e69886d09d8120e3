"""Ingress use cases: webhook secrets, CI runs, posted CloudEvents and deployment requests.
Each takes a unit of work and never commits it: the request scope does (`WriteUow`),
once, so a delivery row and the event it caused commit together."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from mlplane_contracts.envelope import CloudEvent, EventPayload
from mlplane_contracts.events import (
    CI_RUN_COMPLETED,
    CiRunCompleted,
    DeploymentRequested,
    Environment,
)
from mlplane_contracts.subjects import ci_runs_subject, version_subject
from mlplane_runtime.uow import UnitOfWork
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mlplane_gateway.auth.principals import Principal, require_own_team
from mlplane_gateway.errors import EventNotPublishable, Forbidden
from mlplane_gateway.ingress.store import IngressStore
from mlplane_gateway.ingress.webhooks import derive_secret, new_nonce
from mlplane_gateway.tables import GatewayTables

PUBLISHABLE_TYPES = frozenset({CI_RUN_COMPLETED})
"""What callers may publish at `POST /v1/events`. Every other type is some service's
own fact (a scan verdict, a deployment's state): accepting it from outside would let
a caller forge it, e.g. pass an image that was never scanned."""

CLOUDEVENTS_PROVIDER = "cloudevents"
DEPLOYMENT_REQUESTS_PROVIDER = "deployment-request"
"""The deliveries a deployment request's `Idempotency-Key` is recorded under."""
_REQUESTED_DEPLOYMENTS = uuid.UUID("5f0c8a4e-2b7d-4c1e-9a35-6d2f0b8e7c14")
"""Namespace of the deployment ids made from a team's idempotency key: a retried request
names the same deployment."""
_PROPAGATOR = TraceContextTextMapPropagator()


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one delivery or posted event."""

    outcome: Outcome
    event_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentAsked:
    """What became of a deployment request: the deployment it names, and its delivery."""

    deployment_id: uuid.UUID
    received: Received


def subject_of(data: EventPayload) -> str | None:
    if isinstance(data, CiRunCompleted):
        # CI runs are ordered per model.
        return ci_runs_subject(data.team, data.model)
    if isinstance(data, DeploymentRequested):
        return version_subject(data.team, data.model, data.version)
    return None


class IngressService:
    def __init__(
        self,
        uow: UnitOfWork,
        tables: GatewayTables,
        pepper: bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._store = IngressStore(uow.session, tables)
        self._pepper = pepper
        self._clock = clock

    async def rotate_webhook_secret(self, actor: Principal, team: str) -> str:
        """A new webhook secret for `team` (the previous one stops working)."""
        require_own_team(actor, team)
        nonce = new_nonce()
        await self._store.set_webhook_nonce(team, nonce, actor.id)
        return derive_secret(self._pepper, team, nonce)

    async def webhook_secret(self, team: str) -> str | None:
        nonce = await self._store.webhook_nonce(team)
        return None if nonce is None else derive_secret(self._pepper, team, nonce)

    # -- ingress ------------------------------------------------------------------------

    async def accept_ci_run(
        self, provider: str, delivery_id: str, fact: CiRunCompleted
    ) -> Received:
        """Emit the fact unless this delivery was accepted before (then nothing)."""
        return await self._accept_once(fact.team, provider, delivery_id, fact, None)

    async def accept_events(self, actor: Principal, events: Sequence[CloudEvent]) -> list[Received]:
        """Publish each posted event as the gateway's own, once per `(source, id)`.

        The event is re-emitted (new id, source `/mlplane/gateway`) so consumers keep
        one producer per type; its trace context is kept. Raises EventNotPublishable
        for a type outsiders may not publish, Forbidden for another team's event.
        Nothing is emitted unless every event is acceptable.
        """
        for event in events:
            if "\x00" in event.id or "\x00" in event.source:
                # PostgreSQL text cannot hold NUL: refuse rather than fail storing it.
                raise EventNotPublishable(f"event {event.id!r}: id and source may not hold NUL")
            if event.type not in PUBLISHABLE_TYPES:
                raise EventNotPublishable(
                    f"event {event.id}: type {event.type} cannot be published through the "
                    f"gateway (accepted: {', '.join(sorted(PUBLISHABLE_TYPES))})"
                )
            team = getattr(event.data, "team", None)
            if not isinstance(team, str) or not actor.acts_for(team):
                raise Forbidden(f"event {event.id}: its team is not one this credential acts for")
        received: list[Received] = []
        for event in events:
            received.append(await self._accept_event(event))
        return received

    async def request_deployment(
        self,
        actor: Principal,
        team: str,
        *,
        model: str,
        version: int,
        environment: Environment,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentAsked:
        """Emit `deployment.requested` for `team`, asked for by `actor`; the deployer decides
        it by the same rules as its own API (a denial is a `rejected` status change).

        The same `idempotency_key` of the team again names the same deployment and
        emits nothing. Raises NotFound (404) when `actor` does not act for `team`.
        """
        require_own_team(actor, team)
        if idempotency_key is None:
            deployment_id = uuid.uuid4()
        else:
            deployment_id = uuid.uuid5(_REQUESTED_DEPLOYMENTS, f"{team}\n{idempotency_key}")
        data = DeploymentRequested(
            deployment_id=deployment_id,
            team=team,
            model=model,
            version=version,
            environment=environment,
            reason=reason,
            requested_by=actor.id,
            requested_at=self._clock(),
        )
        if idempotency_key is None:
            event = self._uow.emit(data, subject=subject_of(data))
            return DeploymentAsked(deployment_id, Received(Outcome.ACCEPTED, event_id=event.id))
        received = await self._accept_once(
            team, DEPLOYMENT_REQUESTS_PROVIDER, idempotency_key, data, None
        )
        return DeploymentAsked(deployment_id, received)

    async def _accept_event(self, posted: CloudEvent) -> Received:
        team = getattr(posted.data, "team")  # noqa: B009 (checked by accept_events)
        delivery_id = f"{posted.source}\n{posted.id}"
        return await self._accept_once(team, CLOUDEVENTS_PROVIDER, delivery_id, posted.data, posted)

    async def _accept_once(
        self,
        team: str,
        provider: str,
        delivery_id: str,
        data: EventPayload,
        posted: CloudEvent | None,
    ) -> Received:
        # The delivery row first: a duplicate is known before anything is emitted.
        first = await self._store.record_delivery(team, provider, delivery_id)
        if first is not None:
            return Received(Outcome.DUPLICATE, event_id=first.event_id)
        with _trace_of(posted):
            event = self._uow.emit(data, subject=subject_of(data))
        await self._store.set_delivery_event(team, provider, delivery_id, event.id)
        return Received(Outcome.ACCEPTED, event_id=event.id)


@contextmanager
def _trace_of(event: CloudEvent | None) -> Iterator[None]:
    """The posted event's trace context as the current one, so the emitted event keeps it."""
    if event is None or not event.traceparent:
        yield
        return
    carrier = {"traceparent": event.traceparent}
    if event.tracestate:
        carrier["tracestate"] = event.tracestate
    token = otel_context.attach(_PROPAGATOR.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
