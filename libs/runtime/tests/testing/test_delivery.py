"""Events handed to a consumer as the bus hands them over."""

from __future__ import annotations

from datetime import UTC, datetime

from mlplane_contracts.amqp import decode
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_contracts.events import ModelAliasChanged
from mlplane_testing.delivery import as_delivered


def alias_changed() -> CloudEvent:
    return new_event(
        ModelAliasChanged(
            team="team-a",
            model="fraud",
            alias="champion",
            version=2,
            previous_version=1,
            changed_by="user:alice@acme.io",
            changed_at=datetime(2026, 11, 1, tzinfo=UTC),
        ),
        source="/mlplane/registry",
        subject="models/team-a/fraud",
    )


class TestAsDelivered:
    def test_the_consumer_decodes_the_same_event(self) -> None:
        event = alias_changed()

        message = as_delivered(event)

        assert decode(message.headers, message.body, message.content_type) == event

    def test_it_is_a_first_delivery_routed_by_type_and_keyed_by_id(self) -> None:
        event = alias_changed()

        message = as_delivered(event)

        assert (message.routing_key, message.message_id, message.attempt) == (
            event.type,
            event.id,
            1,
        )
