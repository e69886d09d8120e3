"""Gateway benchmark: get-version-by-alias through the gateway next to the same call
straight to the registry, in one run: the gateway's own overhead as a ratio.

Two child processes on this machine, each on a new database of the same PostgreSQL
(dropped after):

- the registry: `mlplane serve registry`, called directly at
  `/registry/models/{m}/aliases/champion` with the team header;
- the gateway: `mlplane serve gateway`, its facade's registry URL pointed at the
  registry's, called at `/v1/registry/models/{m}/aliases/champion` with an API key
  (`Authorization: Bearer`). Each call is authenticated (the key's row is read once,
  then kept in memory until revoked, changed or 60 s old), rate-limited as deployed
  (buckets in Redis, MLPLANE_BENCH_REDIS_URL, default 127.0.0.1:6379 database 13;
  rates and bursts set to 1,000,000/s so they run but never refuse), given a
  signed identity and sent over a pooled keep-alive connection to the registry: the
  real extra hop.

The registry is pre-loaded with 100 models of 5 versions each and a `champion`
alias per model (directly). Then the two sides are measured alternately, twice
(direct, gateway, direct, gateway), each from 16 concurrent callers (LeanHttp,
one keep-alive connection each) after a warm-up, until a request budget or a time
bound runs out; each side's best run counts. Throughput is successful requests over
wall time; p50/p99 are their latencies; `server_cpu_ms_per_request` is the CPU of
every server process on the path (direct: the registry; gateway: the gateway and
the registry) per request, and `gateway_cpu_ms_per_request` the gateway's own.

The load generator and both servers share this machine's CPUs: the gateway side
runs two server processes on them. The load average as measuring began is
reported. `ratio` = gateway ops/s ÷ direct ops/s; the targets are ≥ 0.7 (the
gateway issue's) and ≥ 0.9 with Redis rate limits (the deployed shape's). The registry
runs without an identity key (it trusts the team header, so the direct side can
call it): the gateway still signs an identity per call; the registry's HMAC check
of it (microseconds) is not in the figures.

The last line printed is one JSON object.

    python bench/gateway.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.gateway_setup import (
    NO_THROTTLE,
    GatewayRegistry,
    create_api_key,
    gateway_server,
    registry_server,
)
from bench.support.lean_http import Answer, LeanHttp
from bench.support.registry_clients import MlplaneRegistry, RegistryClient
from bench.support.registry_load import (
    OperationFigures,
    http_client,
    measure,
    operations,
    preload,
)
from bench.support.registry_servers import ServerProcess, free_port, throwaway_database

DEFAULT_POSTGRES = "postgres@127.0.0.1:5432"
CONCURRENCY = 16
MODELS = 100
VERSIONS_PER_MODEL = 5
ROUNDS = 2
TARGET_RATIO = 0.7
DEPLOYED_TARGET_RATIO = 0.9
SEED = 20261126


@dataclasses.dataclass(frozen=True)
class Plan:
    quick: bool

    @property
    def max_requests(self) -> int:
        return 3_000 if self.quick else 20_000

    @property
    def max_seconds(self) -> float:
        return 2.0 if self.quick else 10.0

    @property
    def warmup_requests(self) -> int:
        return 300 if self.quick else 2_000

    @property
    def warmup_seconds(self) -> float:
        return 0.5 if self.quick else 2.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "models": MODELS,
            "versions": MODELS * VERSIONS_PER_MODEL,
            "concurrency": CONCURRENCY,
            "rounds": ROUNDS,
            "per_run_bound": {"requests": self.max_requests, "seconds": self.max_seconds},
            "quick": self.quick,
        }


async def measure_side(
    client: RegistryClient,
    path: Sequence[ServerProcess],
    gateway: ServerProcess | None,
    plan: Plan,
    models: list[str],
) -> dict[str, Any]:
    """Warm up, then time get-by-alias from CONCURRENCY callers; CPU of the `path` servers."""
    async with http_client(client, CONCURRENCY) as http:
        call = operations(client, models, VERSIONS_PER_MODEL, SEED)["get_by_alias"]

        async def warm(http: LeanHttp, index: int) -> Answer:
            return await call(http, index)

        await measure(
            http,
            warm,
            concurrency=CONCURRENCY,
            max_requests=plan.warmup_requests,
            max_seconds=plan.warmup_seconds,
        )
        cpu_before = [server.cpu_seconds() for server in path]
        gateway_before = gateway.cpu_seconds() if gateway is not None else 0.0
        measured = await measure(
            http,
            call,
            concurrency=CONCURRENCY,
            max_requests=plan.max_requests,
            max_seconds=plan.max_seconds,
        )
        spent = sum(s.cpu_seconds() - b for s, b in zip(path, cpu_before, strict=True))
        gateway_spent = gateway.cpu_seconds() - gateway_before if gateway is not None else None
    figures: OperationFigures = dataclasses.replace(
        measured, server_cpu_ms_per_request=round(spent * 1000 / measured.requests, 3)
    )
    result = figures.as_dict()
    if gateway_spent is not None:
        result["gateway_cpu_ms_per_request"] = round(gateway_spent * 1000 / measured.requests, 3)
    print(f"  {client.name}: {result}", file=sys.stderr)
    return result


async def main(plan: Plan) -> dict[str, Any]:
    began = time.perf_counter()
    postgres = os.environ.get("MLPLANE_BENCH_POSTGRES", DEFAULT_POSTGRES)
    admin_dsn = f"postgresql://{postgres}/postgres"
    models = [f"model-{index:03d}" for index in range(MODELS)]
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        workdir = Path(scratch)
        async with (
            throwaway_database(admin_dsn, "gwreg") as registry_db,
            throwaway_database(admin_dsn, "gateway") as gateway_db,
        ):
            registry_port, gateway_port = free_port(), free_port()
            registry_base = f"http://127.0.0.1:{registry_port}"
            gateway_base = f"http://127.0.0.1:{gateway_port}"
            registry = registry_server(
                f"postgresql://{postgres}/{registry_db}", registry_port, workdir
            )
            gateway = gateway_server(
                f"postgresql://{postgres}/{gateway_db}",
                gateway_port,
                workdir,
                f"{registry_base}/registry",
            )
            try:
                registry.start()
                gateway.start()
                await registry.wait_ready()
                await gateway.wait_ready()
                print(
                    f"ready: registry {registry.started_s} s, gateway {gateway.started_s} s",
                    file=sys.stderr,
                )
                direct = MlplaneRegistry(registry_base)
                async with http_client(direct, CONCURRENCY) as http:
                    preload_s = await preload(direct, http, models, VERSIONS_PER_MODEL, CONCURRENCY)
                through = GatewayRegistry(gateway_base, await create_api_key(gateway_base))
                async with http_client(through, 1) as http:
                    # One call through the gateway must work, or the run measures errors.
                    (await through.get_by_alias(http, models[0])).raise_for_status()
                await registry.settle()
                await gateway.settle()
                load_average = os.getloadavg()[0]
                client_cpu = time.process_time()
                runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
                for _ in range(ROUNDS):
                    runs["direct"].append(
                        await measure_side(direct, [registry], None, plan, models)
                    )
                    runs["gateway"].append(
                        await measure_side(through, [gateway, registry], gateway, plan, models)
                    )
                client_cpu = time.process_time() - client_cpu
                load_after = os.getloadavg()[0]
            finally:
                gateway.stop()
                registry.stop()

    best = {side: max(found, key=lambda r: r["ops_per_s"]) for side, found in runs.items()}
    ratio = round(best["gateway"]["ops_per_s"] / best["direct"]["ops_per_s"], 3)
    return {
        "benchmark": "gateway",
        "operation": "get version by alias (GET .../models/{m}/aliases/champion)",
        "scale": plan.as_dict(),
        "direct": {
            "server": "mlplane serve registry (1 process), the identity the gateway would sign",
            **best["direct"],
        },
        "gateway": {
            "server": (
                "mlplane serve gateway (1 process) -> mlplane serve registry, "
                "Authorization: Bearer <API key>"
            ),
            "rate_limit": f"Redis, {NO_THROTTLE}/s and burst {NO_THROTTLE} (never refuses)",
            **best["gateway"],
        },
        "runs": runs,
        "preload_s": round(preload_s, 1),
        # This machine's 1-minute load average when measuring began and ended (others share it).
        "load_average_1m": {"before": round(load_average, 2), "after": round(load_after, 2)},
        "cpus": os.cpu_count(),
        "load_generator_cpu_s": round(client_cpu, 1),
        "ratio": ratio,
        "targets": {
            "gateway_keeps_70pct": {"met": ratio >= TARGET_RATIO, "ratio": ratio},
            "deployed_keeps_90pct": {"met": ratio >= DEPLOYED_TARGET_RATIO, "ratio": ratio},
        },
        "wall_s": round(time.perf_counter() - began, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(Plan(args.quick)))))
