"""The registry benchmark's load: pre-loading models and versions, and timing one operation
at a fixed concurrency until a request budget or a time bound runs out."""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.support.lean_http import TRANSPORT_ERRORS, Answer, LeanHttp
from bench.support.registry_clients import SEARCH_PAGE, RegistryClient

Call = Callable[[LeanHttp, int], Awaitable[Answer]]


@dataclass(frozen=True)
class OperationFigures:
    """One operation's run: successful requests per second over the run's wall time,
    latency percentiles of the successful requests."""

    requests: int
    errors: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_request: float | None = None
    """The server's CPU time (its whole process tree) per successful request: a figure
    that other load on a shared machine disturbs less than throughput."""
    cores_used: dict[str, float] | None = None
    """Cores the server, PostgreSQL, the load generator and everything else used on
    average while it was measured (`cpu_split`): what limited the figure."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def http_client(client: RegistryClient, concurrency: int) -> LeanHttp:
    """A keep-alive client with one connection per concurrent caller."""
    return LeanHttp(concurrency, headers=getattr(client, "headers", {}))


async def _bounded(count: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> None:
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await call(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def preload(
    client: RegistryClient,
    http: LeanHttp,
    models: list[str],
    versions_per_model: int,
    concurrency: int,
) -> float:
    """Create `models`, `versions_per_model` versions of each and alias `champion` on the
    middle version of each; returns the seconds it took. Raises HttpRefused
    on any refused request, RuntimeError when a search does not return a full page
    (the run would measure something else)."""
    began = time.perf_counter()

    async def create_model(index: int) -> None:
        (await client.create_model(http, models[index])).raise_for_status()

    async def create_version(index: int) -> None:
        model = models[index % len(models)]
        (await client.create_version(http, model, index)).raise_for_status()
        if index % 1000 == 999:
            print(f"  {client.name}: {index + 1} versions loaded", file=sys.stderr)

    async def set_alias(index: int) -> None:
        middle = max(1, versions_per_model // 2)
        (await client.set_alias(http, models[index], middle)).raise_for_status()

    await _bounded(len(models), concurrency, create_model)
    await _bounded(len(models) * versions_per_model, concurrency, create_version)
    await _bounded(len(models), concurrency, set_alias)
    seconds = time.perf_counter() - began
    (await client.get_by_alias(http, models[0])).raise_for_status()
    answer = await client.search(http, models[0])
    answer.raise_for_status()
    if (found := client.page_length(answer)) != min(SEARCH_PAGE, versions_per_model):
        raise RuntimeError(f"{client.name}: a search found {found} versions, not a full page")
    return seconds


async def measure(
    http: LeanHttp,
    call: Call,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> OperationFigures:
    """Run `call(http, index)` from `concurrency` callers until `max_requests` were sent or
    `max_seconds` passed (requests in flight then finish and count)."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    began = time.perf_counter()
    deadline = began + max_seconds

    async def caller() -> None:
        nonlocal sent, errors
        while sent < max_requests and time.perf_counter() < deadline:
            index = sent
            sent += 1
            start = time.perf_counter()
            try:
                response = await call(http, index)
            except TRANSPORT_ERRORS:
                errors += 1
                continue
            if response.is_success:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    if len(latencies) < 2:
        raise RuntimeError(f"fewer than 2 successful requests ({errors} errors)")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return OperationFigures(
        requests=len(latencies),
        errors=errors,
        seconds=round(seconds, 3),
        ops_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(cuts[49] * 1000, 2),
        p99_ms=round(cuts[98] * 1000, 2),
    )


def operations(
    client: RegistryClient, models: list[str], versions_per_model: int, seed: int
) -> dict[str, Call]:
    """The four measured operations, each picking a pre-loaded model (and version) at
    random from a generator seeded the same for both servers."""
    rng = random.Random(seed)

    def model() -> str:
        return rng.choice(models)

    async def get_version(http: LeanHttp, _: int) -> Answer:
        return await client.get_version(http, model(), rng.randint(1, versions_per_model))

    async def get_by_alias(http: LeanHttp, _: int) -> Answer:
        return await client.get_by_alias(http, model())

    async def search(http: LeanHttp, _: int) -> Answer:
        return await client.search(http, model())

    async def create_version(http: LeanHttp, index: int) -> Answer:
        # Salts above the pre-load's, so every created version is new content.
        return await client.create_version(http, model(), 10_000_000 + index)

    # Reads first: they see exactly the pre-loaded versions; writes run last.
    return {
        "get_version": get_version,
        "get_by_alias": get_by_alias,
        "search": search,
        "create_version": create_version,
    }
