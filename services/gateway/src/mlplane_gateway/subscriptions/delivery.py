"""Delivering events to subscribers' sinks: one signed HTTP request per try, many at once.

An outcome is sorted by the sink's answer: 2xx delivered; 4xx other than 408
and 429 a permanent failure (the sink refuses this delivery, a retry would get
the same answer); anything else (other statuses, connection errors, timeouts)
retryable. The `Dispatcher` is the deliveries' job definition for the runtime's
leased `JobWorker`: it claims due deliveries from a `DeliveryStore`, runs up to
`concurrency` at once with a timeout each, each in a span continuing the trace that
recorded it, and records each outcome:
delivered, retried later on the subscription's schedule, or dead-lettered with
the reason. At most `concurrency_per_sink` of them go to one sink (its scheme,
host and port) at once, and the store is never asked for more there: a slow
sink's backlog, however many subscriptions feed it, holds that many slots and
leaves the others to every other sink.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

import httpx
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.http import encode_binary, encode_structured
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker

from mlplane_gateway.subscriptions.domain import (
    ContentMode,
    InvalidSink,
    RetrySchedule,
    SinkTarget,
    Subscription,
    sink_key,
)
from mlplane_gateway.subscriptions.mlflow import mlflow_request
from mlplane_gateway.subscriptions.signing import SIGNATURE_HEADER, sign

SUBSCRIPTION_HEADER: Final = "X-Mlplane-Subscription"
DELIVERY_HEADER: Final = "X-Mlplane-Delivery"
USER_AGENT: Final = "mlplane-gateway (webhook delivery)"
_MAX_ERROR_CHARS: Final = 500

_log = logging.getLogger("mlplane.gateway.subscriptions")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    status: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for one try: `attempt` is this try's number (1-based)."""

    id: int
    attempt: int
    subscription: Subscription
    event: CloudEvent
    trace: JobTrace = field(default_factory=JobTrace)
    """The context that recorded the delivery: its tries continue that trace."""


def classify(status: int) -> Outcome:
    """The outcome a sink's HTTP status means."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 400 <= status < 500 and status not in (408, 429):
        return Outcome.PERMANENT
    return Outcome.RETRYABLE


def signed_request(
    subscription: Subscription, event: CloudEvent, delivery_id: int, timestamp: int
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one delivery, in the subscription's content mode, signed."""
    if subscription.mode is ContentMode.MLFLOW:
        headers, body = mlflow_request(subscription.secret, event, timestamp)
        return {**headers, "User-Agent": USER_AGENT}, body
    if subscription.mode is ContentMode.STRUCTURED:
        message = encode_structured(event)
    else:
        message = encode_binary(event)
    headers = {
        **message.headers,
        SIGNATURE_HEADER: sign(message.body, subscription.secret, timestamp),
        SUBSCRIPTION_HEADER: subscription.id,
        DELIVERY_HEADER: str(delivery_id),
        "User-Agent": USER_AGENT,
    }
    return headers, message.body


async def deliver(
    client: httpx.AsyncClient,
    delivery: DueDelivery,
    *,
    timeout_s: float,
    check_sink: Callable[[str], Awaitable[object]],
    clock: Callable[[], float] = time.time,
) -> DeliveryResult:
    """One try of `delivery`; never raises for anything the sink or network does.

    The sink URL is checked again first (its host may resolve elsewhere now);
    refused, the result is a permanent failure.
    """
    started = time.perf_counter()

    def result(outcome: Outcome, status: int | None, error: str | None) -> DeliveryResult:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return DeliveryResult(outcome, status, error and error[:_MAX_ERROR_CHARS], elapsed)

    sink = delivery.subscription.sink_url
    try:
        checked = await check_sink(sink)
    except InvalidSink as exc:
        return result(Outcome.PERMANENT, None, f"sink refused: {exc.detail}")
    headers, body = signed_request(delivery.subscription, delivery.event, delivery.id, int(clock()))
    url, extensions = pinned_request(sink, checked, headers)
    try:
        async with asyncio.timeout(timeout_s):
            # Streamed and closed unread: a sink's answer body is of no use here.
            async with client.stream(
                "POST", url, headers=headers, content=body, extensions=extensions
            ) as response:
                status = response.status_code
    except TimeoutError:
        return result(Outcome.RETRYABLE, None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return result(Outcome.RETRYABLE, None, f"{type(exc).__name__}: {exc}")
    outcome = classify(status)
    return result(outcome, status, None if outcome is Outcome.DELIVERED else f"HTTP {status}")


def pinned_request(
    sink: str, checked: object, headers: dict[str, str]
) -> tuple[httpx.URL, dict[str, Any]]:
    """The URL to connect to and the request's extensions: the host name replaced by
    the address the check resolved it to (the first), so no second lookup can answer
    otherwise; `Host` (added to `headers`) and TLS (SNI and the certificate's name)
    stay on the name. An address in the URL, or no checked addresses, is left alone."""
    url = httpx.URL(sink)
    addresses = checked.addresses if isinstance(checked, SinkTarget) else ()
    host = url.host
    if not addresses or _is_address(host):
        return url, {}
    headers["Host"] = url.netloc.decode("ascii")
    return url.copy_with(host=addresses[0]), {"sni_hostname": host}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DeliveryStore(Protocol):
    """Where deliveries wait and what happened to them (`postgres.PostgresDeliveries`)."""

    async def claim_due(
        self, limit: int, lease_s: float, *, per_sink: int, in_flight: Mapping[str, int]
    ) -> Sequence[DueDelivery]:
        """Up to `limit` due deliveries of enabled subscriptions, oldest first, leased
        for `lease_s` (taken with SKIP LOCKED: concurrent dispatchers never claim the
        same one); a lease that runs out makes the delivery due again. Per sink key
        (`domain.sink_key`) at most `per_sink` less its count in `in_flight`."""
        ...

    async def renew(self, delivery: DueDelivery, lease_s: float) -> bool:
        """Extend the lease of a claimed try; False when that try is no longer current."""
        ...

    async def release(self, delivery: DueDelivery) -> None:
        """Make a claimed try due again now, uncounted (the dispatcher stops)."""
        ...

    async def record_delivered(self, delivery: DueDelivery, result: DeliveryResult) -> None: ...

    async def schedule_retry(
        self, delivery: DueDelivery, result: DeliveryResult, delay_s: float
    ) -> None: ...

    async def dead_letter(
        self, delivery: DueDelivery, result: DeliveryResult, reason: str
    ) -> None: ...


class Dispatcher:
    """Delivers due deliveries from `store` on the runtime's leased job worker.

    `start()` / `await stop()` (or `await dispatcher.run(stop_event)`); `wake()` when
    a delivery was committed due now. On stop, deliveries in flight get their timeout
    to finish, then are cancelled and released (due again at once).
    """

    def __init__(
        self,
        store: DeliveryStore,
        client: httpx.AsyncClient,
        *,
        check_sink: Callable[[str], Awaitable[object]],
        schedule: RetrySchedule | None = None,
        concurrency: int = 16,
        concurrency_per_sink: int = 2,
        timeout_s: float = 10.0,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
        random_fraction: Callable[[], float] = random.random,
        service: str = "gateway",
    ) -> None:
        if (
            concurrency < 1
            or concurrency_per_sink < 1
            or timeout_s <= 0
            or lease_s <= timeout_s
            or poll_s <= 0
        ):
            raise ValueError(
                "concurrency >= 1, concurrency_per_sink >= 1, timeout_s > 0,"
                " lease_s > timeout_s, poll_s > 0"
            )
        self._store = store
        self._client = client
        self._check_sink = check_sink
        self._schedule = schedule or RetrySchedule()
        self._per_sink = concurrency_per_sink
        self._timeout_s = timeout_s
        self._random = random_fraction
        self._worker: JobWorker[DueDelivery, None] = JobWorker(
            service,
            "delivery",
            self,
            concurrency=concurrency,
            lease_s=lease_s,
            poll_s=poll_s,
            stop_timeout_s=timeout_s + 1,
        )

    def wake(self) -> None:
        """A delivery may be due now: claim at once rather than at the next poll."""
        self._worker.wake()

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until `stop` is set, then stop as `stop()` does."""
        self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- the runtime's LeasedJobs ---------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[DueDelivery]:
        return await self._store.claim_due(
            request.limit, request.lease_s, per_sink=self._per_sink, in_flight=request.running
        )

    async def renew(self, delivery: DueDelivery, lease_s: float) -> bool:
        return await self._store.renew(delivery, lease_s)

    async def release(self, delivery: DueDelivery) -> None:
        await self._store.release(delivery)

    def describe(self, delivery: DueDelivery) -> JobInfo:
        return JobInfo(
            id=str(delivery.id),
            trace=delivery.trace,
            group=sink_key(delivery.subscription.sink_url),
            attributes={
                "mlplane.subscription": delivery.subscription.id,
                "mlplane.attempt": delivery.attempt,
                "cloudevents.event_id": delivery.event.id,
                "cloudevents.event_type": delivery.event.type,
            },
        )

    async def next_due_in(self) -> float | None:
        return None  # retries fall due at the poll

    async def run_job(self, delivery: DueDelivery) -> None:
        """One try of `delivery`, its outcome recorded: delivered, retried, dead-lettered."""
        result = await deliver(
            self._client, delivery, timeout_s=self._timeout_s, check_sink=self._check_sink
        )
        try:
            if result.outcome is Outcome.DELIVERED:
                await self._store.record_delivered(delivery, result)
            elif result.outcome is Outcome.PERMANENT:
                await self._store.dead_letter(
                    delivery, result, f"permanent failure: {result.error}"
                )
            elif self._schedule.gives_up_after(delivery.attempt):
                await self._store.dead_letter(
                    delivery,
                    result,
                    f"gave up after {delivery.attempt} attempts; last: {result.error}",
                )
            else:
                delay = self._schedule.delay_s(delivery.attempt, self._random())
                await self._store.schedule_retry(delivery, result, delay)
        except Exception:
            # The lease runs out and the delivery is tried again: at least once.
            _log.exception("recording delivery %s failed", delivery.id)
