"""The gateway's use cases. Each takes a unit of work and never commits it: the
route does, once, so a delivery row and the event it caused commit together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mlplane_contracts.envelope import CloudEvent, EventPayload
from mlplane_contracts.events import CI_RUN_COMPLETED, CiRunCompleted
from mlplane_contracts.subjects import ci_runs_subject
from mlplane_runtime.errors import NotFound
from mlplane_runtime.uow import UnitOfWork
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mlplane_gateway.domain.api_keys import ApiKey, hash_key, new_key, new_key_id
from mlplane_gateway.domain.errors import (
    ApiKeyNotFound,
    DuplicateKeyId,
    EventNotPublishable,
    Forbidden,
)
from mlplane_gateway.domain.principals import ALL_SCOPES, Principal, PrincipalKind, Scope
from mlplane_gateway.domain.webhooks import derive_secret, new_nonce
from mlplane_gateway.store import GatewayStore, GatewayTables

PUBLISHABLE_TYPES = frozenset({CI_RUN_COMPLETED})
"""What callers may publish at `POST /v1/events`. Every other type is some service's
own fact (a scan verdict, a deployment's state): accepting it from outside would let
a caller forge it, e.g. pass an image that was never scanned."""

CLOUDEVENTS_PROVIDER = "cloudevents"
_KEY_ID_ATTEMPTS = 5
INITIAL_ADMIN = Principal(
    kind=PrincipalKind.BOOTSTRAP, id="gateway:first-start", team=None, scopes=ALL_SCOPES
)
"""Who makes the initial admin key (its `created_by`)."""
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


def subject_of(data: EventPayload) -> str | None:
    if isinstance(data, CiRunCompleted):
        # CI runs are ordered per model.
        return ci_runs_subject(data.team, data.model)
    return None


class GatewayService:
    def __init__(self, uow: UnitOfWork, tables: GatewayTables, pepper: bytes) -> None:
        self._uow = uow
        self._store = GatewayStore(uow.session, tables)
        self._pepper = pepper

    # -- API keys -----------------------------------------------------------------------

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
        _own_team(actor, team)
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
            _own_team(actor, team)
        return await self._store.api_keys(team if team is not None else actor.team, limit)

    async def revoke_api_key(self, actor: Principal, key_id: str, now: datetime) -> ApiKey:
        """Revoke the key; ApiKeyNotFound when it does not exist or is another team's."""
        key = await self._store.api_key(key_id)
        if key is None or not actor.acts_for(key.team):
            raise ApiKeyNotFound(f"no API key {key_id}")
        revoked = await self._store.revoke_api_key(key_id, now)
        assert revoked is not None
        return revoked

    # -- webhook secrets ----------------------------------------------------------------

    async def rotate_webhook_secret(self, actor: Principal, team: str) -> str:
        """A new webhook secret for `team` (the previous one stops working)."""
        _own_team(actor, team)
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


def _own_team(actor: Principal, team: str) -> None:
    # Another team's resources are "not found", so their existence does not leak.
    if not actor.acts_for(team):
        raise NotFound(f"no team {team}")


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
