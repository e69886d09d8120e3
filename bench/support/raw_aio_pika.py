"""The bus benchmark's baseline: raw aio-pika with the same guarantees as mlplane's bus.

Persistent messages, publisher confirms (pipelined in windows), a durable quorum
queue, manual acks after "handling", one broker. No database, no envelope: the
fastest honest way to move the same number of messages through RabbitMQ. The
publisher runs in its own process (bench/support/producer_process.py), as mlplane's does.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika

from bench.support.child import ProducerProcess
from bench.support.figures import RunFigures


async def run_raw_aio_pika(
    amqp_url: str, events: int, *, prefetch: int = 256, rate: float | None = None
) -> RunFigures:
    """Publish `events` messages from a child process and consume them here.

    Without `rate`, as fast as the publisher can; with one, `rate` messages/s.
    Latency runs from just before the publish to the consumer's callback.
    """
    connection = await aio_pika.connect_robust(amqp_url)
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    done = asyncio.Event()
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent_at = float(str(message.headers["x-sent-at"]))
            latencies.append(time.time() - sent_at)
            await message.ack()
            if len(latencies) >= events:
                done.set()

        await queue.consume(on_message)
        pace = [] if rate is None else [str(rate)]
        async with ProducerProcess("raw", amqp_url, queue_name, str(events), *pace) as producer:
            started = producer.go()
            await asyncio.wait_for(done.wait(), timeout=600)
            elapsed = time.perf_counter() - started
        return RunFigures.from_samples(events, elapsed, latencies)
    finally:
        cleanup = await connection.channel()
        await cleanup.queue_delete(queue_name)
        await connection.close()
