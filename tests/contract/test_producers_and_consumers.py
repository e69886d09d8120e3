"""For every event type, each consuming service's handler accepts what the producing
service's own code emitted: one case per (type, producer, consumer) of the topology.

The examples are not written here: they are the messages the producers' relays
published while `flow.drive` ran the producers' real use cases on the hosted platform,
decoded and handled by each consumer's own consumer path (decoding, inbox, handler) on
the in-process bus. A case passes when, for every such message, the consumer's inbox
holds it (its handler ran and committed) and it was never dead-lettered.

A service the topology names but that is not installed yet is listed in
`pending.NOT_YET_INSTALLED`: its cases are expected to fail for that reason alone (strict, so
once it is installed they pass, fail as XPASS, and the entry must go). Any other
missing producer fails its cases with a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from mlplane_contracts import events as ev
from mlplane_contracts.export import DEFAULT_DIRECTORY, schema_file_name
from mlplane_contracts.topology import (
    PRODUCED_BY,
    SERVICES,
    bindings,
    consumers_of,
    source_of,
)

from .observed import Message, Observed
from .pending import (
    NOT_YET_HANDLED,
    NOT_YET_INSTALLED,
    NotEmitted,
    NotHandled,
    NotInstalled,
    pending_marks,
)


def _cases() -> list[object]:
    return [
        pytest.param(
            event_type,
            producer,
            consumer,
            marks=pending_marks(event_type, (producer, consumer), consumer),
            id=f"{event_type}:{producer}->{consumer}",
        )
        for event_type, producer in sorted(PRODUCED_BY.items())
        for consumer in consumers_of(event_type)
    ]


def _emitted(observed: Observed, event_type: str, producer: str) -> list[Message]:
    missing = sorted({producer} - observed.installed)
    if missing:
        raise NotInstalled(
            f"{event_type} is produced by {producer}, which is not installed "
            f"(installed: {', '.join(sorted(observed.installed))})"
        )
    messages = [m for m in observed.messages if m.type == event_type]
    if not messages:
        raise NotEmitted(
            f"no {event_type} was emitted by {producer}'s use cases in flow.drive "
            f"(emitted: {sorted({m.type for m in observed.messages})})"
        )
    return messages


@pytest.mark.parametrize(("event_type", "producer", "consumer"), _cases())
def test_the_consumer_accepts_what_the_producer_emits(
    observed: Observed, event_type: str, producer: str, consumer: str
) -> None:
    messages = _emitted(observed, event_type, producer)
    if consumer not in observed.installed:
        raise NotInstalled(f"{consumer}, a consumer of {event_type}, is not installed")
    if event_type not in observed.subscriptions.get(consumer, frozenset()):
        raise NotHandled(
            f"{consumer}'s queue is bound to {event_type} (topology.CONSUMES) but it has no "
            f"handler for it, so the host never subscribes it: {producer}'s events are lost "
            f"to it (it handles {sorted(observed.subscriptions.get(consumer, ()))})"
        )
    refused = []
    for message in messages:
        assert message.source == source_of(producer), (message.source, message.id)
        outcome = observed.outcomes[(message.id, consumer)]
        if outcome.dead_letter_reason is not None or not outcome.handled:
            refused.append(
                f"{message.id}: dead letter {outcome.dead_letter_reason!r}, "
                f"handled={outcome.handled}, data={json.dumps(message.data)[:800]}"
            )
    assert not refused, f"{consumer} refused {producer}'s {event_type}:\n" + "\n".join(refused)


@pytest.mark.parametrize(
    "event_type",
    [pytest.param(t, marks=pending_marks(t, (PRODUCED_BY[t],))) for t in sorted(PRODUCED_BY)],
)
def test_what_the_producer_emits_is_valid_against_the_committed_schema(
    observed: Observed, event_type: str
) -> None:
    messages = _emitted(observed, event_type, PRODUCED_BY[event_type])
    schema = json.loads(Path(DEFAULT_DIRECTORY, schema_file_name(event_type)).read_text())
    validator = Draft202012Validator(schema)
    for message in messages:
        assert message.decode_error is None, message.decode_error
        assert message.published.content_type == "application/json"
        body = json.loads(message.published.body)
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (message.id, errors)
        assert message.published.headers.get("cloudEvents_dataschema") in (None, schema["$id"])


def test_no_message_of_the_flow_was_refused_anywhere(observed: Observed) -> None:
    """Besides the cases: nothing any installed service published was dead-lettered."""
    refused = {
        key: outcome.dead_letter_reason
        for key, outcome in observed.outcomes.items()
        if outcome.dead_letter_reason is not None
    }
    assert not refused, refused
    assert all(m.decode_error is None for m in observed.messages)


def test_every_service_of_the_topology_is_installed_or_listed_as_not_yet() -> None:
    from .hosting import installed_services

    installed = set(installed_services())
    assert set(SERVICES) - installed == set(NOT_YET_INSTALLED) - installed
    # An entry for an installed service is stale: its cases must run for real.
    assert not installed & set(NOT_YET_INSTALLED), (
        f"installed now, remove from NOT_YET_INSTALLED: {installed & set(NOT_YET_INSTALLED)}"
    )


def test_the_consumers_recorded_what_the_events_said(observed: Observed) -> None:
    """Where it is cheap to see: the events' effects, read back from the consumers."""
    built = next(m.data for m in observed.messages if m.type == ev.IMAGE_BUILT)
    scanned = next(m.data for m in observed.messages if m.type == ev.IMAGE_SCANNED)
    failed = next(m.data for m in observed.messages if m.type == ev.IMAGE_BUILD_FAILED)
    image = f"{built['image']['repository']}@{built['image']['digest']}"

    first = observed.effects["registry_v1"]["lifecycle"]
    assert first["image"] == image, first
    assert first["scan_verdict"] == scanned["verdict"], (first, scanned["verdict"])
    assert first["stage"] not in ("registered", "building", "built"), first
    second = observed.effects["registry_v2"]["lifecycle"]
    assert second["stage"] == "build_failed", second
    assert second["build_failure"] == failed["reason"], second

    [deployment] = observed.effects["deployments"]["deployments"]
    assert (deployment["version"], deployment["phase"]) == (1, "committed"), deployment
    assert deployment["image"] == image or deployment["image"]["digest"] == built["image"]["digest"]


@pytest.mark.parametrize(
    "service", [pytest.param(s, marks=pending_marks(None, (s,), s)) for s in SERVICES]
)
def test_each_service_handles_every_type_its_queue_is_bound_to(
    observed: Observed, service: str
) -> None:
    """The host subscribes a service to the types it has handlers for; the topology (and
    the AsyncAPI document, and RabbitMQ's bindings for other consumers' sake) says what
    it consumes. They must agree, or events the topology promises it are dropped."""
    if service not in observed.installed:
        raise NotInstalled(f"{service} is not installed")
    handled = observed.subscriptions[service]
    bound = set(bindings(service))
    assert not handled - bound, f"{service} handles types it is not bound to: {handled - bound}"
    missing = sorted(bound - handled)
    unexpected = [t for t in missing if (service, t) not in NOT_YET_HANDLED]
    assert not unexpected, f"{service} has no handler for {unexpected}, which it is bound to"
    if missing:
        raise NotHandled(f"{service} has no handler yet for {missing}")
