"""The delivery semantics every bus transport must have, as one suite.

`test_bus_rabbit.py` and `test_bus_embedded.py` subclass `TransportContract` and
provide a `bus` fixture (a `BusHarness`) building their transport on the real
RabbitMQ or PostgreSQL, so both transports pass the very same tests.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import pytest
from mlplane_runtime.bus.base import (
    InboundMessage,
    PoisonMessage,
    RetryPolicy,
    Transport,
)
from prometheus_client import REGISTRY

from .bus_fixtures import (
    FAST_RETRY,
    Recorder,
    eventually,
    ids_of,
    message,
    unique_routing_key,
    unique_service,
)


class BusHarness(Protocol):
    """Builds transports for one test and removes what they created afterwards."""

    def transport(
        self,
        *,
        retry: RetryPolicy = FAST_RETRY,
        concurrency: int = 8,
        graceful_timeout_s: float = 10.0,
    ) -> Transport:
        """A new, not yet started transport, stopped at the end of the test."""
        ...

    def service(self) -> str:
        """A unique service name whose queues are removed at the end of the test."""
        ...


async def _started(
    bus: BusHarness,
    service: str,
    event_types: list[str],
    handler: Recorder,
    **options: object,
) -> Transport:
    transport = bus.transport(**options)  # type: ignore[arg-type]
    transport.subscribe(service, event_types, handler)
    await transport.start()
    return transport


def _dead_letter_depth(service: str) -> float | None:
    return REGISTRY.get_sample_value("mlplane_dead_letter_depth", {"service": service})


def _counted(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


class TransportContract:
    """Published -> handled once per bound service; acks, retries, DLQ, replay."""

    async def test_each_bound_service_handles_a_published_message_once(
        self, bus: BusHarness
    ) -> None:
        rk, other_rk = unique_routing_key(), unique_routing_key()
        first, second, unbound = bus.service(), bus.service(), bus.service()
        handlers = {first: Recorder(), second: Recorder(), unbound: Recorder()}
        transport = bus.transport()
        transport.subscribe(first, [rk, other_rk], handlers[first])
        transport.subscribe(second, [rk], handlers[second])
        transport.subscribe(unbound, [other_rk], handlers[unbound])
        await transport.start()
        sent = message(rk, b'{"hello":"world"}', traceparent="00-abc-def-01")
        marker = message(other_rk)

        await transport.publish([sent, marker])

        await eventually(lambda: len(handlers[first].calls) == 2, "first service got both")
        await eventually(lambda: len(handlers[second].calls) == 1, "second service got it")
        await eventually(lambda: len(handlers[unbound].calls) == 1, "marker reached unbound")
        assert handlers[first].ids() == [sent.message_id, marker.message_id]
        assert handlers[second].ids() == [sent.message_id]
        assert handlers[unbound].ids() == [marker.message_id]
        got = handlers[second].calls[0].message
        assert got.body == b'{"hello":"world"}'
        assert got.routing_key == rk
        assert got.attempt == 1
        assert got.headers["traceparent"] == "00-abc-def-01"
        assert got.headers["ce-source"] == "/tests"
        assert got.content_type == "application/json"

    async def test_messages_are_handled_in_publish_order_by_a_single_consumer(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()
        handler = Recorder()
        transport = await _started(bus, service, [rk], handler, concurrency=1)
        batch = [message(rk, str(i).encode()) for i in range(30)]

        await transport.publish(batch)

        await eventually(lambda: len(handler.calls) == 30, "all 30 handled")
        assert handler.ids() == ids_of(batch)

    async def test_several_deliveries_are_handled_at_once(self, bus: BusHarness) -> None:
        rk, service = unique_routing_key(), bus.service()
        all_inside = asyncio.Event()

        async def wait_for_the_others(_: InboundMessage) -> None:
            if len(handler.calls) == 4:
                all_inside.set()
            await all_inside.wait()

        handler = Recorder(wait_for_the_others)
        transport = await _started(bus, service, [rk], handler, concurrency=4)

        await transport.publish([message(rk) for _ in range(4)])

        # Each handler returns only once all four are inside at the same time.
        await eventually(all_inside.is_set, "four handlers running at once")

    async def test_a_delivery_is_not_acked_while_its_handler_has_not_returned(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()
        release = asyncio.Event()

        async def hang(_: InboundMessage) -> None:
            await release.wait()

        stuck = Recorder(hang)
        first = await _started(bus, service, [rk], stuck, graceful_timeout_s=0.2)
        sent = message(rk)
        await first.publish([sent])
        await eventually(lambda: len(stuck.calls) == 1, "first handler entered")

        # Stopping gives up on the handler that never returned: no ack was sent.
        await first.stop()
        second = Recorder()
        await _started(bus, service, [rk], second)

        await eventually(lambda: len(second.calls) == 1, "delivered again")
        assert second.ids() == [sent.message_id]
        release.set()

    async def test_a_handled_message_is_not_delivered_again(self, bus: BusHarness) -> None:
        rk, service = unique_routing_key(), bus.service()
        first_handler = Recorder()
        first = await _started(bus, service, [rk], first_handler)
        handled = message(rk)
        await first.publish([handled])
        await eventually(lambda: len(first_handler.calls) == 1, "handled once")
        await first.stop()

        second_handler = Recorder()
        second = await _started(bus, service, [rk], second_handler)
        marker = message(rk)
        await second.publish([marker])

        # The queue is FIFO: had `handled` not been acked it would come first.
        await eventually(lambda: len(second_handler.calls) >= 1, "marker handled")
        assert second_handler.ids() == [marker.message_id]

    async def test_a_message_published_while_its_service_is_down_waits_for_it(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()
        declared = await _started(bus, service, [rk], Recorder())
        await declared.stop()
        publisher = bus.transport()
        await publisher.start()
        sent = message(rk)

        await publisher.publish([sent])
        handler = Recorder()
        await _started(bus, service, [rk], handler)

        await eventually(lambda: len(handler.calls) == 1, "handled after start")
        assert handler.ids() == [sent.message_id]

    async def test_a_handler_failing_twice_is_retried_with_growing_delays(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()

        async def fail_twice(m: InboundMessage) -> None:
            if m.attempt < 3:
                raise RuntimeError(f"transient failure {m.attempt}")

        handler = Recorder(fail_twice)
        retry = RetryPolicy(max_attempts=5, base_delay_s=0.2, factor=3.0)
        transport = await _started(bus, service, [rk], handler, retry=retry)
        sent = message(rk)

        await transport.publish([sent])

        await eventually(lambda: len(handler.calls) == 3, "third try")
        calls = handler.of(sent.message_id)
        assert [c.message.attempt for c in calls] == [1, 2, 3]
        first_wait = calls[1].at - calls[0].at
        second_wait = calls[2].at - calls[1].at
        assert second_wait > first_wait
        assert calls[2].message.routing_key == rk
        assert calls[2].message.body == sent.body
        assert await transport.dead_letters(service) == []
        assert _counted("mlplane_events_retried_total", service=service, event_type=rk) == 2

    async def test_an_always_failing_message_is_dead_lettered_after_the_last_try(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()
        bad = message(rk, b"bad")

        async def fail_on_bad(m: InboundMessage) -> None:
            if m.message_id == bad.message_id:
                raise RuntimeError(f"boom on try {m.attempt}")

        handler = Recorder(fail_on_bad)
        retry = RetryPolicy(max_attempts=3, base_delay_s=0.3, factor=2.0)
        transport = await _started(bus, service, [rk], handler, retry=retry, concurrency=1)
        good = [message(rk) for _ in range(10)]

        await transport.publish([bad, *good])

        await eventually(
            lambda: len(handler.of(bad.message_id)) == 3 and len(handler.calls) == 13,
            "three tries of the bad one and every good one",
        )

        async def parked() -> bool:
            return len(await transport.dead_letters(service)) == 1

        await eventually(parked, "the bad message in the DLQ")
        (letter,) = await transport.dead_letters(service)
        assert letter.message_id == bad.message_id
        assert letter.attempts == 3
        assert "boom on try 3" in letter.reason
        assert "RuntimeError" in letter.reason
        assert letter.routing_key == rk
        assert letter.body == b"bad"
        assert letter.service == service
        assert letter.dead_lettered_at is not None
        assert (
            _counted(
                "mlplane_events_dead_lettered_total",
                service=service,
                event_type=rk,
                reason_kind="exhausted",
            )
            == 1
        )
        # The consumer went on with the others while the bad one waited for its tries.
        order = handler.ids()
        last_bad_try = len(order) - 1 - order[::-1].index(bad.message_id)
        assert any(order.index(g.message_id) < last_bad_try for g in good)

    async def test_a_poison_message_is_dead_lettered_at_once(self, bus: BusHarness) -> None:
        rk, service = unique_routing_key(), bus.service()

        async def refuse(m: InboundMessage) -> None:
            raise PoisonMessage(f"not an event: {m.body!r}")

        handler = Recorder(refuse)
        transport = await _started(bus, service, [rk], handler)
        sent = message(rk, b"garbage")

        await transport.publish([sent])

        async def parked() -> bool:
            return len(await transport.dead_letters(service)) == 1

        await eventually(parked, "poison message in the DLQ")
        (letter,) = await transport.dead_letters(service)
        assert len(handler.calls) == 1
        assert letter.message_id == sent.message_id
        assert letter.reason == "not an event: b'garbage'"
        assert letter.attempts == 1
        assert (
            _counted(
                "mlplane_events_dead_lettered_total",
                service=service,
                event_type=rk,
                reason_kind="poison",
            )
            == 1
        )

    async def test_listing_dead_letters_leaves_them_in_place(self, bus: BusHarness) -> None:
        rk, service = unique_routing_key(), bus.service()

        async def refuse(_: InboundMessage) -> None:
            raise PoisonMessage("refused")

        transport = await _started(bus, service, [rk], Recorder(refuse), concurrency=1)
        batch = [message(rk, str(i).encode()) for i in range(3)]
        await transport.publish(batch)

        async def all_parked() -> bool:
            return len(await transport.dead_letters(service)) == 3

        await eventually(all_parked, "three dead letters")
        first_listing = await transport.dead_letters(service)
        second_listing = await transport.dead_letters(service)

        assert first_listing == second_listing
        assert [d.message_id for d in first_listing] == ids_of(batch)
        assert _dead_letter_depth(service) == 3
        assert [d.message_id for d in await transport.dead_letters(service, limit=2)] == ids_of(
            batch[:2]
        )

    async def test_replayed_dead_letters_are_handled_from_the_first_try(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()
        refused_once: set[str | None] = set()

        async def refuse_first_time(m: InboundMessage) -> None:
            if m.message_id not in refused_once:
                refused_once.add(m.message_id)
                raise PoisonMessage("refused the first time")

        handler = Recorder(refuse_first_time)
        transport = await _started(bus, service, [rk], handler, concurrency=1)
        batch = [message(rk, str(i).encode()) for i in range(3)]
        await transport.publish(batch)

        async def all_parked() -> bool:
            return len(await transport.dead_letters(service)) == 3

        await eventually(all_parked, "three dead letters")
        letters = await transport.dead_letters(service)

        assert await transport.replay(service, [letters[0].dead_letter_id]) == 1
        await eventually(lambda: len(handler.calls) == 4, "the named one handled again")
        remaining = await transport.dead_letters(service)
        assert [d.message_id for d in remaining] == ids_of(batch[1:])

        assert await transport.replay(service) == 2
        await eventually(lambda: len(handler.calls) == 6, "the rest handled again")
        assert await transport.dead_letters(service) == []
        assert _dead_letter_depth(service) == 0
        replayed = handler.calls[3:]
        assert sorted(c.message.message_id or "" for c in replayed) == sorted(ids_of(batch))
        assert all(c.message.attempt == 1 for c in replayed)
        assert all(c.message.routing_key == rk for c in replayed)
        assert await transport.replay(service) == 0

    async def test_a_service_subscribes_once_under_a_queue_name(self, bus: BusHarness) -> None:
        transport = bus.transport()
        service = bus.service()
        transport.subscribe(service, [unique_routing_key()], Recorder())

        with pytest.raises(ValueError, match="already subscribed"):
            transport.subscribe(service, [unique_routing_key()], Recorder())
        with pytest.raises(ValueError, match="invalid service name"):
            transport.subscribe("Not A Queue Name", [unique_routing_key()], Recorder())

    async def test_publishing_a_type_nobody_consumes_succeeds(self, bus: BusHarness) -> None:
        transport = bus.transport()
        await transport.start()

        await transport.publish([message(unique_routing_key()) for _ in range(3)])

        assert await transport.ping()

    async def test_a_stopped_transport_is_not_ready(self, bus: BusHarness) -> None:
        transport = bus.transport()
        await transport.start()
        assert await transport.ping()

        await transport.stop()

        assert not await transport.ping()

    async def test_replicas_compete_on_the_service_queue_each_message_handled_once(
        self, bus: BusHarness
    ) -> None:
        rk, service = unique_routing_key(), bus.service()

        async def work(_: InboundMessage) -> None:
            await asyncio.sleep(0.01)

        first, second = Recorder(work), Recorder(work)
        replica_a = bus.transport(concurrency=4)
        replica_a.subscribe(service, [rk], first)
        replica_b = bus.transport(concurrency=4)
        replica_b.subscribe(service, [rk], second)
        await replica_a.start()
        await replica_b.start()  # declares the very same queues and bindings again
        await replica_a.start()  # a second start is a no-op
        batch = [message(rk) for _ in range(100)]

        await replica_a.publish(batch)

        expected = {m.message_id for m in batch}
        await eventually(
            lambda: len(first.calls) + len(second.calls) == 100, "every message handled"
        )
        assert set(first.ids()) | set(second.ids()) == expected
        assert not set(first.ids()) & set(second.ids())
        assert first.calls
        assert second.calls


__all__ = ["BusHarness", "TransportContract", "unique_service"]
