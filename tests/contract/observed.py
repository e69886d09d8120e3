"""What the producer -> consumer contract tests judge: every message the hosted services'
relays published during the flow, and what each consumer made of it.

Gathered once per session (see conftest): the platform is hosted, the producers' use
cases driven (`flow.drive`), then the bus is left to settle until no outbox holds a row
and every message has, at every consumer bound to its type, either an inbox row (its
handler ran and committed: accepted) or a dead letter (refused). Then the platform is
stopped; the tests read only this record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mlplane_contracts.amqp import decode
from mlplane_contracts.errors import EventDecodeError
from mlplane_contracts.topology import consumers_of

from .flow import ENVIRONMENT, POLL_S, WAIT_S, drive, effects
from .hosting import Hosted, Published, hosted_platform, installed_services


@dataclass(frozen=True)
class Message:
    """One published message, decoded as a consumer decodes it."""

    published: Published
    type: str
    source: str
    id: str
    data: Any
    decode_error: str | None


@dataclass(frozen=True)
class Outcome:
    subscribed: bool
    """Whether the consumer has a handler for the type (the host binds only those)."""
    handled: bool
    dead_letter_reason: str | None


@dataclass
class Observed:
    installed: frozenset[str]
    messages: list[Message] = field(default_factory=list)
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    """(message id, consumer) -> what that consumer made of it."""
    subscriptions: dict[str, frozenset[str]] = field(default_factory=dict)
    """Each hosted service's handled event types: what the host bound its queue to."""
    effects: dict[str, Any] = field(default_factory=dict)
    """What the consumers' own APIs answered once the bus had settled (see flow.effects)."""


def _as_message(published: Published) -> Message:
    headers = published.headers
    try:
        event = decode(headers, published.body, published.content_type)
        data = event.data.model_dump(mode="json")
        error = None
    except EventDecodeError as exc:
        data, error = None, str(exc)
    return Message(
        published=published,
        type=str(headers.get("cloudEvents_type", published.routing_key)),
        source=str(headers.get("cloudEvents_source", "")),
        id=str(headers.get("cloudEvents_id", published.message_id)),
        data=data,
        decode_error=error,
    )


async def _outcomes(hosted: Hosted, messages: list[Message]) -> dict[tuple[str, str], Outcome]:
    outcomes: dict[tuple[str, str], Outcome] = {}
    subscriptions = _subscriptions(hosted)
    consumers = {c for m in messages for c in consumers_of(m.type) if c in hosted.schemas}
    for consumer in sorted(consumers):
        inbox = await hosted.inbox(consumer)
        letters = await hosted.transport.dead_letters(consumer, limit=1000)
        reasons = {letter.message_id: letter.reason for letter in letters}
        for message in messages:
            if consumer in consumers_of(message.type):
                outcomes[(message.id, consumer)] = Outcome(
                    subscribed=message.type in subscriptions[consumer],
                    handled=(message.source, message.id) in inbox,
                    dead_letter_reason=reasons.get(message.id),
                )
    return outcomes


def _subscriptions(hosted: Hosted) -> dict[str, frozenset[str]]:
    return {service.name: frozenset(service.event_types) for service in hosted.platform.services}


async def _settled(hosted: Hosted) -> tuple[list[Message], dict[tuple[str, str], Outcome]]:
    """The messages and outcomes once nothing is in flight (or AssertionError)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        messages = [_as_message(p) for p in list(hosted.published)]
        backlog = await hosted.outbox_backlog()
        outcomes = await _outcomes(hosted, messages)
        types = {m.id: m.type for m in messages}
        pending = [
            (types[message_id], consumer, message_id)
            for (message_id, consumer), outcome in outcomes.items()
            # A delivery the host never subscribed the consumer to cannot arrive.
            if outcome.subscribed and not outcome.handled and outcome.dead_letter_reason is None
        ]
        if not any(backlog.values()) and not pending:
            return messages, outcomes
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the bus did not settle within {WAIT_S:g} s: outbox rows {backlog}, "
                f"deliveries neither handled nor dead-lettered {pending[:20]}"
            )
        await asyncio.sleep(POLL_S)


async def observe(database_url: str, data_dir: Path) -> Observed:
    """Host the platform, drive the producers, let the bus settle; the record of it."""
    observed = Observed(installed=frozenset(installed_services()))
    async with hosted_platform(database_url, data_dir, ENVIRONMENT) as hosted:
        transport = httpx.ASGITransport(app=hosted.platform.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://contract.test", timeout=30
        ) as client:
            driver = await drive(hosted, client)
            observed.messages, observed.outcomes = await _settled(hosted)
            observed.effects = await effects(driver)
            observed.subscriptions = _subscriptions(hosted)
    return observed
