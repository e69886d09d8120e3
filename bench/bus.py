"""Bus benchmark: mlplane's outbox → relay → RabbitMQ → inbox path next to raw aio-pika.

Both run as two processes (producer, consumer) against the same broker and queue type
(quorum, persistent, publisher confirms, manual acks), one after the other, so the
ratio compares like with like on this machine today. Two phases:

- throughput: `--events` produced as fast as the producer can; events/s;
- latency: a fixed offered rate below saturation (300 events/s for 20 s, 6 s with
  `--quick`), one event per transaction (per publish for the baseline); p50/p99 from
  just before the producer's commit to the commit of the consumer's effect (to the
  consumer's callback for the baseline).

Each run measures a warmed-up path, as a service that has been running a while
is: the raw producer connects and opens its channel before it is released; the
mlplane producer first sends a few uncounted events from each of its senders,
so every pooled connection has connected and prepared its statements and the
relay and the consumer have run once (cold connections cost 20-100 ms apiece on
the first events, a percent of a 6 s latency phase).

The last line printed is one JSON object with both runs' figures (each with its
`latency`) and `ratio` = mlplane events/s ÷ raw events/s (throughput phase).

    python bench/bus.py [--quick] [--events N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.figures import RunFigures
from bench.support.mlplane_bus import run_mlplane_bus
from bench.support.raw_aio_pika import run_raw_aio_pika

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _latency(figures: RunFigures, rate: float, seconds: float) -> dict[str, float]:
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "events": figures.events,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
    }


async def main(events: int, rate: float, seconds: float) -> dict[str, object]:
    database_url = os.environ.get("MLPLANE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    amqp_url = os.environ.get("MLPLANE_BENCH_AMQP_URL", DEFAULT_AMQP_URL)
    # A short warm-up of each so neither pays for first connections and JIT-less imports.
    await run_raw_aio_pika(amqp_url, 500)
    await run_mlplane_bus(database_url, amqp_url, 500)
    raw = await run_raw_aio_pika(amqp_url, events)
    print(f"raw aio-pika: {raw}", file=sys.stderr)
    mlplane = await run_mlplane_bus(database_url, amqp_url, events)
    print(f"mlplane:      {mlplane}", file=sys.stderr)
    paced = round(rate * seconds)
    raw_paced = await run_raw_aio_pika(amqp_url, paced, rate=rate)
    print(f"raw aio-pika at {rate:g}/s: {raw_paced}", file=sys.stderr)
    mlplane_paced = await run_mlplane_bus(database_url, amqp_url, paced, rate=rate)
    print(f"mlplane at {rate:g}/s:      {mlplane_paced}", file=sys.stderr)
    return {
        "benchmark": "bus",
        "events": events,
        "mlplane": {**mlplane.as_dict(), "latency": _latency(mlplane_paced, rate, seconds)},
        "baseline": {
            "name": "raw aio-pika",
            **raw.as_dict(),
            "latency": _latency(raw_paced, rate, seconds),
        },
        "ratio": round(mlplane.events_per_s / raw.events_per_s, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run under 60 s")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rate", type=float, default=300.0, help="offered events/s (latency)")
    parser.add_argument("--seconds", type=float, default=None, help="latency phase length")
    args = parser.parse_args()
    count = args.events or (5_000 if args.quick else 20_000)
    seconds = args.seconds or (6.0 if args.quick else 20.0)
    print(json.dumps(asyncio.run(main(count, args.rate, seconds))))
