"""A relay in its own process, so the reliability test can SIGKILL it mid-burst.

Usage: python relay_worker.py <database_url> <schema> <amqp_url> <service>
"""

from __future__ import annotations

import asyncio
import signal
import sys

from mlplane_runtime.bus.rabbit import RabbitTransport
from mlplane_runtime.db import create_database
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.relay import OutboxRelay
from sqlalchemy import MetaData


async def main(database_url: str, schema: str, amqp_url: str, service: str) -> None:
    database = create_database(database_url)
    tables = messaging_tables(MetaData(schema=schema))
    transport = RabbitTransport(amqp_url, connection_name=f"relay-{service}")
    await transport.start()
    relay = OutboxRelay(database, tables, transport, service, batch_size=200)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    relay.start()
    print("relay-ready", flush=True)
    await stop.wait()
    await relay.stop()
    await transport.stop()
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
