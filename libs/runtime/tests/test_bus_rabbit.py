"""RabbitTransport against the real RabbitMQ: the shared contract, then what only it has.

Only this test's own connection is ever closed (found by its unique connection
name); every queue a test declares is deleted afterwards. Exchanges are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed
from mlplane_contracts.topology import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    dead_letter_queue_name,
    queue_name,
    retry_queue_name,
)
from mlplane_runtime.bus.base import InboundMessage, OutboundMessage, RetryPolicy
from mlplane_runtime.bus.rabbit import RabbitTransport, delete_service_queues
from mlplane_runtime.errors import Unavailable

from .bus_fixtures import FAST_RETRY, Recorder, eventually, message, unique_routing_key
from .bus_fixtures import unique_service as new_service_name
from .transport_contract import TransportContract


class RabbitBus:
    """Builds RabbitTransports for one test; stops them and deletes their queues after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.transports: list[RabbitTransport] = []
        self.services: list[str] = []

    def transport(
        self,
        *,
        retry: RetryPolicy = FAST_RETRY,
        concurrency: int = 8,
        graceful_timeout_s: float = 10.0,
        connection_name: str | None = None,
        prefetch: int | None = None,
    ) -> RabbitTransport:
        transport = RabbitTransport(
            self.url,
            retry=retry,
            concurrency=concurrency,
            prefetch=prefetch,
            graceful_timeout_s=graceful_timeout_s,
            connection_name=connection_name or f"mlplane-test-{uuid4().hex[:10]}",
        )
        self.transports.append(transport)
        return transport

    def service(self) -> str:
        name = new_service_name()
        self.services.append(name)
        return name

    async def close(self) -> None:
        for transport in self.transports:
            with contextlib.suppress(Exception):
                await transport.stop()
        for service in self.services:
            await delete_service_queues(self.url, service)


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[RabbitBus]:
    harness = RabbitBus(amqp_url)
    try:
        yield harness
    finally:
        await harness.close()


class TestRabbitTransportContract(TransportContract):
    """The shared delivery semantics, on RabbitMQ."""


async def _rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def _connection_pids(connection_name: str) -> list[str]:
    """Pids of the RabbitMQ connections whose client property connection_name matches."""
    # The plain listing prints pids as close_connection takes them (JSON does not).
    listing = await _rabbitmqctl("list_connections", "pid", "client_properties", "-q")
    return [
        line.split("\t", 1)[0]
        for line in listing.splitlines()
        if f'{{"connection_name","{connection_name}"}}' in line
    ]


async def _publish_until_confirmed(transport: RabbitTransport, batch: list[OutboundMessage]) -> int:
    """Publish like the outbox relay does: on `Unavailable`, wait and publish again."""
    refusals = 0
    while True:
        try:
            await transport.publish(batch)
            return refusals
        except Unavailable:
            refusals += 1
            assert refusals < 300, "RabbitMQ never took the batch back"
            await asyncio.sleep(0.1)


async def test_consumption_resumes_after_the_connection_is_closed_and_nothing_is_lost(
    bus: RabbitBus,
) -> None:
    rk, service = unique_routing_key(), bus.service()
    connection_name = f"mlplane-test-{uuid4().hex[:10]}"

    async def work(_: InboundMessage) -> None:
        await asyncio.sleep(0.002)

    handler = Recorder(work)
    transport = bus.transport(concurrency=16, connection_name=connection_name)
    transport.subscribe(service, [rk], handler)
    await transport.start()
    before = [message(rk) for _ in range(400)]
    await transport.publish(before)
    await eventually(lambda: len(handler.calls) >= 20, "consumption under way")
    (pid,) = await _connection_pids(connection_name)

    await _rabbitmqctl("close_connection", pid, "test: connection loss")
    during = [message(rk) for _ in range(200)]
    await _publish_until_confirmed(transport, during)

    async def reconnected() -> bool:
        pids = await _connection_pids(connection_name)
        return len(pids) == 1 and pids != [pid]

    await eventually(reconnected, "a new connection under the same name")
    after = [message(rk) for _ in range(200)]
    await transport.publish(after)
    expected = {m.message_id for m in before + during + after}
    await eventually(lambda: expected <= set(handler.ids()), "every message handled", 60)
    # At-least-once: deliveries in flight at the close come again, nothing else.
    assert set(handler.ids()) == expected


async def test_a_prefetch_above_the_concurrency_still_bounds_the_handlers_at_once(
    bus: RabbitBus,
) -> None:
    rk, service = unique_routing_key(), bus.service()
    inside = 0
    most_inside = 0

    async def work(_: InboundMessage) -> None:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        await asyncio.sleep(0.02)
        inside -= 1

    handler = Recorder(work)
    transport = bus.transport(concurrency=2, prefetch=10)
    transport.subscribe(service, [rk], handler)
    await transport.start()

    await transport.publish([message(rk) for _ in range(30)])

    await eventually(lambda: len(handler.calls) == 30, "all handled")
    assert most_inside == 2


async def test_a_replica_with_another_retry_policy_is_refused_at_start(bus: RabbitBus) -> None:
    rk, service = unique_routing_key(), bus.service()
    first = bus.transport(retry=RetryPolicy(max_attempts=3, base_delay_s=0.1))
    first.subscribe(service, [rk], Recorder())
    await first.start()
    other = bus.transport(retry=RetryPolicy(max_attempts=3, base_delay_s=0.2))
    other.subscribe(service, [rk], Recorder())

    with pytest.raises(ChannelPreconditionFailed):
        await other.start()

    assert not await other.ping()


async def test_start_declares_the_topology_of_each_subscribed_service(
    bus: RabbitBus,
) -> None:
    rk_a, rk_b, service = unique_routing_key(), unique_routing_key(), bus.service()
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.25, factor=2.0)
    transport = bus.transport(retry=retry)
    transport.subscribe(service, [rk_a, rk_b], Recorder())

    await transport.start()

    queues = {
        q["name"]: q
        for q in json.loads(
            await _rabbitmqctl(
                "list_queues", "name", "type", "durable", "arguments", "--formatter", "json", "-q"
            )
        )
        if q["name"].startswith(queue_name(service))
    }
    assert set(queues) == {
        queue_name(service),
        retry_queue_name(service, 1),
        retry_queue_name(service, 2),
        dead_letter_queue_name(service),
    }
    assert queues[queue_name(service)]["type"] == "quorum"
    assert queues[dead_letter_queue_name(service)]["type"] == "classic"
    assert all(q["durable"] for q in queues.values())
    ttls = [
        dict((a[0], a[2]) for a in queues[retry_queue_name(service, level)]["arguments"])
        for level in (1, 2)
    ]
    assert [t["x-message-ttl"] for t in ttls] == [250, 500]
    assert all(t["x-dead-letter-routing-key"] == queue_name(service) for t in ttls)
    bindings = {
        (b["source_name"], b["destination_name"], b["routing_key"])
        for b in json.loads(
            await _rabbitmqctl(
                "list_bindings",
                "source_name",
                "destination_name",
                "routing_key",
                "--formatter",
                "json",
                "-q",
            )
        )
    }
    assert (EXCHANGE, queue_name(service), rk_a) in bindings
    assert (EXCHANGE, queue_name(service), rk_b) in bindings
    assert (
        DEAD_LETTER_EXCHANGE,
        dead_letter_queue_name(service),
        dead_letter_queue_name(service),
    ) in bindings


async def test_delete_service_queues_removes_every_queue_of_the_service(
    bus: RabbitBus, amqp_url: str
) -> None:
    rk, service = unique_routing_key(), bus.service()
    transport = bus.transport()
    transport.subscribe(service, [rk], Recorder())
    await transport.start()
    await transport.stop()

    await delete_service_queues(amqp_url, service, retry=FAST_RETRY)

    connection = await aio_pika.connect(amqp_url)
    try:
        for name in (queue_name(service), dead_letter_queue_name(service)):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(name, passive=True)
    finally:
        await connection.close()


async def test_publishing_before_start_is_refused(bus: RabbitBus) -> None:
    transport = bus.transport()

    with pytest.raises(RuntimeError):
        await transport.publish([message(unique_routing_key())])
