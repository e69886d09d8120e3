"""The producing side of a bus benchmark run, in a process of its own.

As deployed, the service that emits events and the service that consumes them are
separate processes; both benchmark paths run that way, so each side gets a core's
share of the machine. The child prints `ready` once set up, waits for a line on
stdin, produces, and exits once everything it produced is confirmed by RabbitMQ.

    python -m bench.support.producer_process raw <amqp_url> <queue> <events> [<rate>]
    python -m bench.support.producer_process mlplane <amqp_url> <database_url> <schema> \
        <service> <events> [<rate>]

Without a rate it produces as fast as it can (throughput). With one it offers
`rate` events/s on a fixed schedule, one event per publish or per committed
transaction, each stamped just before it is sent or committed (latency).
The mlplane producer warms up before `ready` (see `warm_up`); its events carry
negative numbers, which the consumer does not count.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import aio_pika

CONFIRM_WINDOW = 500
EVENTS_PER_TRANSACTION = 10
PRODUCERS = 4
# Paced runs send like a service under steady load: many requests in flight at
# once, so one slow commit (an fsync on a busy disk) does not hold back the next.
PACED_SENDERS = 16
WARM_UP_ROUNDS = 3  # events per sender before `go` (mlplane), not counted


async def _wait_for_go() -> None:
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


async def _paced(events: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call `send(i)` for each i at `start + i / rate` (open loop: a late one goes at once).

    Several senders share the schedule, so one slow send does not hold back the next.
    """
    start = time.perf_counter()

    async def sender(first: int) -> None:
        for number in range(first, events, PACED_SENDERS):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(number)

    await asyncio.gather(*(sender(i) for i in range(PACED_SENDERS)))


async def produce_raw(amqp_url: str, queue_name: str, events: int, rate: float | None) -> None:
    """Persistent messages with publisher confirms, pipelined in windows (or paced)."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        body = b'{"team":"bench","model":"fraud","version":1}'
        await _wait_for_go()
        if rate is not None:

            async def send(number: int) -> None:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body,
                        headers={"x-sent-at": repr(time.time())},
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=str(number),
                        content_type="application/json",
                    ),
                    routing_key=queue_name,
                )

            await _paced(events, rate, send)
            return
        for window_start in range(0, events, CONFIRM_WINDOW):
            window = range(window_start, min(events, window_start + CONFIRM_WINDOW))
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            body,
                            headers={"x-sent-at": repr(time.time())},
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(i),
                            content_type="application/json",
                        ),
                        routing_key=queue_name,
                    )
                    for i in window
                )
            )
    finally:
        await connection.close()


async def produce_mlplane(
    amqp_url: str, database_url: str, schema: str, service: str, events: int, rate: float | None
) -> None:
    """Units of work writing events to the outbox; a relay publishing them."""
    from mlplane_runtime.bus.rabbit import RabbitTransport
    from mlplane_runtime.db import create_database
    from mlplane_runtime.messaging_tables import messaging_tables
    from mlplane_runtime.relay import OutboxRelay
    from mlplane_runtime.uow import UnitOfWorkFactory
    from sqlalchemy import MetaData, func, select

    from bench.support.bench_event import BenchPing

    # A connection per sender and the relay's (a service is sized for its load).
    database = create_database(database_url, pool_size=PACED_SENDERS + 2)
    tables = messaging_tables(MetaData(schema=schema))
    transport = RabbitTransport(amqp_url)
    relay = OutboxRelay(database, tables, transport, service)
    uow_factory = UnitOfWorkFactory(database, tables, service)

    async def produce(first: int) -> None:
        step = PRODUCERS * EVENTS_PER_TRANSACTION
        for start in range(first * EVENTS_PER_TRANSACTION, events, step):
            async with uow_factory() as uow:
                now = time.time()
                for number in range(start, min(events, start + EVENTS_PER_TRANSACTION)):
                    uow.emit(BenchPing(number=number, committed_at=now), subject=f"p/{number % 64}")
                await uow.commit()

    async def produce_one(number: int) -> None:
        async with uow_factory() as uow:
            uow.emit(BenchPing(number=number, committed_at=time.time()), subject=f"p/{number % 64}")
            await uow.commit()

    async def drained() -> None:
        while True:  # the relay deletes what RabbitMQ confirmed
            async with database.engine.connect() as connection:
                left = await connection.scalar(select(func.count()).select_from(tables.outbox))
            if not left:
                return
            await asyncio.sleep(0.1)

    async def warm_up() -> None:
        # Like a service that has been up a while: every pooled connection has
        # connected and prepared the unit of work's statements, the relay and the
        # consumer have run (the raw baseline connects before `go` too). The
        # consumer does not count these events.
        for round_ in range(WARM_UP_ROUNDS):
            await asyncio.gather(
                *(produce_one(-1 - round_ * PACED_SENDERS - i) for i in range(PACED_SENDERS))
            )
        await drained()

    try:
        await transport.start()
        relay.start()
        # Commits made before the relay listens would wait for its poll.
        for _ in range(1000):  # at most 10 s
            if relay.listening:
                break
            await asyncio.sleep(0.01)
        await warm_up()
        await _wait_for_go()
        if rate is None:
            await asyncio.gather(*(produce(i) for i in range(PRODUCERS)))
        else:
            await _paced(events, rate, produce_one)
        await drained()
    finally:
        await relay.stop()
        await transport.stop()
        await database.dispose()


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "raw":
        pace = float(args[3]) if len(args) > 3 else None
        asyncio.run(produce_raw(args[0], args[1], int(args[2]), pace))
    else:
        pace = float(args[5]) if len(args) > 5 else None
        asyncio.run(produce_mlplane(args[0], args[1], args[2], args[3], int(args[4]), pace))
