"""The bus benchmark's baseline: raw aio-pika with the same guarantees as mlplane's bus.

Persistent messages, publisher confirms (pipelined in windows), a durable quorum
queue, manual acks after "handling", one broker. No database, no envelope: the
fastest honest way to move the same number of messages through RabbitMQ.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika

from bench.figures import RunFigures

CONFIRM_WINDOW = 500


async def run_raw_aio_pika(amqp_url: str, events: int, *, prefetch: int = 256) -> RunFigures:
    """Publish `events` messages and consume them; throughput and end-to-end latency."""
    connection = await aio_pika.connect_robust(amqp_url)
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    done = asyncio.Event()
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=prefetch)
        queue = await consume_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent_at = float(str(message.headers["x-sent-at"]))
            latencies.append(time.perf_counter() - sent_at)
            await message.ack()
            if len(latencies) >= events:
                done.set()

        await queue.consume(on_message)
        body = b'{"team":"bench","model":"fraud","version":1}'
        started = time.perf_counter()
        for window_start in range(0, events, CONFIRM_WINDOW):
            window = range(window_start, min(events, window_start + CONFIRM_WINDOW))
            await asyncio.gather(
                *(
                    publish_channel.default_exchange.publish(
                        aio_pika.Message(
                            body,
                            headers={"x-sent-at": repr(time.perf_counter())},
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(i),
                            content_type="application/json",
                        ),
                        routing_key=queue_name,
                    )
                    for i in window
                )
            )
        await asyncio.wait_for(done.wait(), timeout=300)
        elapsed = time.perf_counter() - started
        return RunFigures.from_samples(events, elapsed, latencies)
    finally:
        channel = await connection.channel()
        await channel.queue_delete(queue_name)
        await connection.close()
