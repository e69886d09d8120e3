"""Bus benchmark: mlplane's outbox → relay → RabbitMQ → inbox path next to raw aio-pika.

Both run as two processes (producer, consumer) against the same broker and queue type
(quorum, persistent, publisher confirms, manual acks), one after the other, so the
ratio compares like with like on this machine today. The last line printed is one
JSON object with both runs' figures and `ratio` = mlplane events/s ÷ raw events/s.

    python bench/bus.py [--quick] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.mlplane_bus import run_mlplane_bus
from bench.support.raw_aio_pika import run_raw_aio_pika

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def main(events: int) -> dict[str, object]:
    database_url = os.environ.get("MLPLANE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    amqp_url = os.environ.get("MLPLANE_BENCH_AMQP_URL", DEFAULT_AMQP_URL)
    # A short warm-up of each so neither pays for first connections and JIT-less imports.
    await run_raw_aio_pika(amqp_url, 500)
    await run_mlplane_bus(database_url, amqp_url, 500)
    raw = await run_raw_aio_pika(amqp_url, events)
    print(f"raw aio-pika: {raw}", file=sys.stderr)
    mlplane = await run_mlplane_bus(database_url, amqp_url, events)
    print(f"mlplane:      {mlplane}", file=sys.stderr)
    return {
        "benchmark": "bus",
        "events": events,
        "mlplane": mlplane.as_dict(),
        "baseline": {"name": "raw aio-pika", **raw.as_dict()},
        "ratio": round(mlplane.events_per_s / raw.events_per_s, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run under 60 s")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    count = args.events or (5_000 if args.quick else 20_000)
    print(json.dumps(asyncio.run(main(count))))
