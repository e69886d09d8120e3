"""Subscriptions for one hosting, built from settings: the sink check, the event source
the SSE stream reads, the sinks' HTTP client and the delivery dispatcher (a leased
`JobWorker`), and the bus handlers recording every event the gateway consumes.

`build_subscriptions` connects to nothing; `start()` starts delivering, `aclose()`
stops (deliveries in flight get their timeout) and closes the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx
from mlplane_contracts.topology import CONSUMES
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.db import Database

from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions.delivery import USER_AGENT, Dispatcher
from mlplane_gateway.subscriptions.postgres import PostgresDeliveries, PostgresEventSource
from mlplane_gateway.subscriptions.sinks import SinkChecker
from mlplane_gateway.subscriptions.store import subscription_event_handler
from mlplane_gateway.subscriptions.tables import SubscriptionTables

SUBSCRIBED_TYPES: Final = CONSUMES["gateway"]
"""What subscribers and the stream can see: the types the gateway's queue is bound to."""
_STOP_S: Final = 30.0

_log = logging.getLogger("mlplane.gateway")


@dataclass(slots=True)
class Subscriptions:
    """What subscriptions need at run time besides a unit of work."""

    tables: SubscriptionTables
    sink_checker: SinkChecker
    events: PostgresEventSource
    """What the SSE stream reads; woken when this process records an event."""
    dispatcher: Dispatcher
    client: httpx.AsyncClient
    """The sinks' client (no redirects: one would reach a URL the check never saw)."""
    max_per_team: int
    _dispatching: bool = False

    def event_handlers(self) -> Mapping[str, EventHandler]:
        """Every consumed event is recorded for subscriptions and the stream."""
        handler = subscription_event_handler(self.tables, self.event_recorded)
        return {event_type: handler for event_type in SUBSCRIBED_TYPES}

    def event_recorded(self) -> None:
        """An event was committed: wake the streams and the dispatcher."""
        self.events.changed()
        self.dispatcher.wake()

    def start(self) -> None:
        """Start delivering to subscribers (on the running event loop)."""
        if not self._dispatching:
            self._dispatching = True
            self.dispatcher.start()

    async def aclose(self) -> None:
        """Stop the dispatcher (deliveries in flight get their timeout), close the client."""
        dispatching, self._dispatching = self._dispatching, False
        if dispatching:
            try:
                await asyncio.wait_for(self.dispatcher.stop(), _STOP_S)
            except Exception:
                _log.exception("the delivery dispatcher did not stop cleanly")
        await self.client.aclose()


def build_subscriptions(
    settings: GatewaySettings, database: Database, tables: SubscriptionTables
) -> Subscriptions:
    """Subscriptions as `settings` describe them, on `tables` in `database`."""
    sink_checker = SinkChecker(settings.allowlist())
    client = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=settings.delivery_concurrency),
    )
    dispatcher = Dispatcher(
        PostgresDeliveries(database, tables),
        client,
        check_sink=sink_checker,
        schedule=settings.retry_schedule(),
        concurrency=settings.delivery_concurrency,
        concurrency_per_sink=settings.delivery_concurrency_per_sink,
        timeout_s=settings.delivery_timeout_s,
        lease_s=max(60.0, settings.delivery_timeout_s * 3),
        poll_s=settings.delivery_poll_s,
    )
    return Subscriptions(
        tables=tables,
        sink_checker=sink_checker,
        events=PostgresEventSource(database, tables, poll_s=settings.delivery_poll_s),
        dispatcher=dispatcher,
        client=client,
        max_per_team=settings.max_subscriptions_per_team,
    )
