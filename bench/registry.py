"""Registry benchmark: mlplane's registry next to an MLflow tracking server, same operations.

Both servers run as child processes on this machine against the same PostgreSQL
(each in a new database, dropped after), and are measured one after the other:

- mlplane: `mlplane serve registry --workers 2` (the platform host with the registry
  plug-in, in-process bus in its database, two worker processes under one
  supervisor), driven through `/registry/...`;
- MLflow: `mlflow server --workers <CPUs>` (as shipped: its job runner on, but for
  `--quick`), driven
  through `/api/2.0/mlflow/...`.

Strictly one server at a time: mlplane starts, is loaded, measured and stopped
before MLflow starts. An MLflow that answers /health still burns about a core for
a while (its job runner starting helpers), so after start-up and after the
pre-load each server is left until its process tree idles (under 0.1 core for 1 s,
at most 120 s): measuring during that tail made MLflow look 3x slower. Request logging is
off on both. The machine may be shared: each side reports the load average as its
measuring began and the load generator's own CPU time.

Each server first gets 100 models with 100 versions each (`--quick`: 20 models x
50 versions) and a `champion` alias per model; one search must then return a full
page and the alias must resolve, or the run stops. Then each operation runs alone,
after a warm-up, from 16 concurrent callers (LeanHttp, one keep-alive
connection each) until a request budget or a time bound runs out: get-version,
get-by-alias, search (one model's versions, a page of 10), then create-version.
Throughput counts successful requests over wall time; p50/p99 are their latencies;
`server_cpu_ms_per_request` is the server tree's CPU time per request; `cores_used`
how many cores the server, PostgreSQL, the load generator and everything else on
the machine used meanwhile (2 cores in all here: it says what limited the figure).

Memory is the peak, over the server's life, of the summed PSS (proportional set
size) of its process tree (psutil, every 100 ms): mlplane's workers are forked from
one parent and share its pages, which a sum of RSS would count once per process
(that sum is given too, `peak_rss_mb`). MLflow's is also given without its job
runner (`peak_pss_mb_without_job_runner`), which the registry does not use; the
memory target is judged on that, the stricter figure. PostgreSQL's memory is not
counted for either.

The last line printed is one JSON object. `ratios` are per operation: mlplane ops/s
÷ MLflow ops/s; the top-level `ratio` is their geometric mean.
`cpu_per_request_ratios` are MLflow's server CPU per request ÷ mlplane's. `targets`
says whether each target of the registry issue was met: reads ≥ 10x MLflow, writes
≥ 5x, every mlplane p99 < 50 ms, mlplane's memory ≤ 1/5 of MLflow's.

A full run pre-loads 10,000 versions into MLflow through its API, which takes
minutes. `--quick` runs MLflow with its job runner off (it does no registry work;
starting it and waiting for it to idle took most of a minute).

    python bench/registry.py [--quick] [--mlflow-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.cpu_split import CpuSplit
from bench.support.identity import identity_environment
from bench.support.lean_http import Answer, LeanHttp
from bench.support.registry_clients import TEAM, MlflowRegistry, MlplaneRegistry, RegistryClient
from bench.support.registry_load import (
    Call,
    OperationFigures,
    http_client,
    measure,
    operations,
    preload,
)
from bench.support.registry_servers import ServerProcess, free_port, throwaway_database

DEFAULT_POSTGRES = "postgres@127.0.0.1:5432"
CONCURRENCY = 16
READS = ("get_version", "get_by_alias", "search")
WRITES = ("create_version",)
BIN = Path(sys.executable).parent
SEED = 20261126


class Plan:
    def __init__(self, quick: bool, mlflow_workers: int, mlplane_workers: int = 2) -> None:
        self.quick = quick
        self.models = 20 if quick else 100
        self.versions_per_model = 50 if quick else 100
        self.max_requests = 3_000 if quick else 20_000
        self.max_seconds = 2.0 if quick else 15.0
        self.warmup_requests = 200 if quick else 1_000
        self.warmup_seconds = 0.3 if quick else 3.0
        self.mlflow_workers = mlflow_workers
        self.mlplane_workers = mlplane_workers
        # --quick turns MLflow's job runner off: it does no registry work, and starting
        # it (then waiting for it to idle) took most of a minute, over --quick's budget.
        self.mlflow_job_runner = not quick

    def as_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "versions": self.models * self.versions_per_model,
            "scaled_down": self.quick,
            "note": (
                "--quick: scaled down from 10,000 versions over 100 models"
                if self.quick
                else "10,000 versions over 100 models"
            ),
            "concurrency": CONCURRENCY,
            "per_operation_bound": {"requests": self.max_requests, "seconds": self.max_seconds},
            "mlflow_workers": self.mlflow_workers,
            "mlplane_workers": self.mlplane_workers,
            "mlflow_job_runner": self.mlflow_job_runner,
        }


async def run_operations(
    server: ServerProcess, client: RegistryClient, plan: Plan, models: list[str]
) -> dict[str, OperationFigures]:
    """Warm up and measure each operation in turn on an already pre-loaded server."""
    figures: dict[str, OperationFigures] = {}
    async with http_client(client, CONCURRENCY) as http:
        calls = operations(client, models, plan.versions_per_model, SEED)
        for name, call in calls.items():

            async def warm(http: LeanHttp, index: int, call: Call = call) -> Answer:
                # Its own indexes, so warm-up writes never repeat a measured one's content.
                return await call(http, 5_000_000 + index)

            await measure(
                http,
                warm,
                concurrency=CONCURRENCY,
                max_requests=plan.warmup_requests,
                max_seconds=plan.warmup_seconds,
            )
            cpu_before = server.cpu_seconds()
            split = CpuSplit(server.pid)
            split.start()
            measured = await measure(
                http,
                call,
                concurrency=CONCURRENCY,
                max_requests=plan.max_requests,
                max_seconds=plan.max_seconds,
            )
            cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / measured.requests
            figures[name] = dataclasses.replace(
                measured, server_cpu_ms_per_request=round(cpu_ms, 2), cores_used=split.cores()
            )
            print(f"  {client.name} {name}: {figures[name]}", file=sys.stderr)
    return figures


async def load(client: RegistryClient, plan: Plan, models: list[str]) -> float:
    async with http_client(client, CONCURRENCY) as http:
        seconds = await preload(client, http, models, plan.versions_per_model, CONCURRENCY)
    print(f"  {client.name}: pre-loaded in {seconds:.1f} s", file=sys.stderr)
    return round(seconds, 1)


async def run_server(
    server: ServerProcess, client: RegistryClient, plan: Plan, models: list[str]
) -> dict[str, Any]:
    """Start `server`, pre-load it, measure every operation, stop it; its figures."""
    print(f"starting {server.name}", file=sys.stderr)
    server.start()
    try:
        await server.wait_ready()
        print(f"{server.name} ready in {server.started_s} s", file=sys.stderr)
        settled_s = await server.settle()
        print(f"{server.name} settled after {settled_s} s more", file=sys.stderr)
        preload_s = await load(client, plan, models)
        await server.settle()
        load_average = os.getloadavg()[0]
        client_cpu = time.process_time()
        figures = await run_operations(server, client, plan, models)
        client_cpu = time.process_time() - client_cpu
    finally:
        server.stop()
    return {
        "started_s": server.started_s,
        "settled_after_s": settled_s,
        "preload_s": preload_s,
        # This machine's 1-minute load average as the measuring began (others share it).
        "load_average_1m": round(load_average, 2),
        "load_generator_cpu_s": round(client_cpu, 1),
        "operations": figures,
    }


def _targets(
    ratios: dict[str, float], mlplane: dict[str, OperationFigures], memory_share: float
) -> dict[str, Any]:
    worst_read = min(ratios[name] for name in READS)
    worst_write = min(ratios[name] for name in WRITES)
    worst_p99 = max(f.p99_ms for f in mlplane.values())
    return {
        "reads_10x": {"met": worst_read >= 10, "worst_ratio": worst_read},
        "writes_5x": {"met": worst_write >= 5, "worst_ratio": worst_write},
        "p99_under_50ms": {"met": worst_p99 < 50, "worst_p99_ms": worst_p99},
        "memory_fifth": {"met": memory_share <= 0.2, "mlplane_share_of_mlflow": memory_share},
    }


async def main(plan: Plan) -> dict[str, Any]:
    began = time.perf_counter()
    postgres = os.environ.get("MLPLANE_BENCH_POSTGRES", DEFAULT_POSTGRES)
    admin_dsn = f"postgresql://{postgres}/postgres"
    models = [f"model-{index:03d}" for index in range(plan.models)]
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as scratch:
        workdir = Path(scratch)
        async with (
            throwaway_database(admin_dsn, "mlplane") as mlplane_db,
            throwaway_database(admin_dsn, "mlflow") as mlflow_db,
        ):
            mlplane_port, mlflow_port = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
            mlplane_server = ServerProcess(
                "mlplane",
                [
                    str(BIN / "mlplane"),
                    "serve",
                    "registry",
                    "--workers",
                    str(plan.mlplane_workers),
                ],
                env={
                    **env,
                    "MLPLANE_DATABASE_URL": f"postgresql://{postgres}/{mlplane_db}",
                    "MLPLANE_HTTP_PORT": str(mlplane_port),
                    "MLPLANE_DATA_DIR": str(workdir / "mlplane-data"),
                    "MLPLANE_LOG_LEVEL": "WARNING",
                    **identity_environment(TEAM),
                },
                cwd=workdir,
                ready_url=f"http://127.0.0.1:{mlplane_port}/readyz",
            )
            mlflow_server = ServerProcess(
                "mlflow",
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    f"postgresql+psycopg2://{postgres}/{mlflow_db}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    str(plan.mlflow_workers),
                    "--artifacts-destination",
                    str(workdir / "mlartifacts"),
                    "--uvicorn-opts",
                    "--no-access-log --log-level warning",
                ],
                env={
                    **env,
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": str(plan.mlflow_job_runner).lower(),
                },
                cwd=workdir,
                ready_url=f"http://127.0.0.1:{mlflow_port}/health",
                exclude_from_memory=("mlflow.server.jobs", "huey_consumer"),
            )
            mlplane_client = MlplaneRegistry(f"http://127.0.0.1:{mlplane_port}")
            mlflow_client = MlflowRegistry(f"http://127.0.0.1:{mlflow_port}")
            try:
                mlplane = await run_server(mlplane_server, mlplane_client, plan, models)
                mlflow = await run_server(mlflow_server, mlflow_client, plan, models)
            finally:
                mlplane_server.stop()
                mlflow_server.stop()

    mlplane_ops: dict[str, OperationFigures] = mlplane.pop("operations")
    mlflow_ops: dict[str, OperationFigures] = mlflow.pop("operations")
    ratios = {
        name: round(mlplane_ops[name].ops_per_s / mlflow_ops[name].ops_per_s, 3)
        for name in mlplane_ops
    }
    # MLflow's CPU per request ÷ mlplane's: what each request costs, less disturbed by
    # other load on a shared machine than throughput is.
    cpu_ratios = {
        name: round(
            (mlflow_ops[name].server_cpu_ms_per_request or 0)
            / (mlplane_ops[name].server_cpu_ms_per_request or math.inf),
            3,
        )
        for name in mlplane_ops
    }
    geomean = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    memory_share = round(mlplane_server.peak_pss_mb / mlflow_server.peak_pss_excluding_mb, 3)
    return {
        "benchmark": "registry",
        "scale": plan.as_dict(),
        "mlplane": {
            "server": f"mlplane serve registry --workers {plan.mlplane_workers}",
            **mlplane,
            "peak_pss_mb": mlplane_server.peak_pss_mb,
            "peak_rss_mb": mlplane_server.peak_rss_mb,
            "operations": {name: f.as_dict() for name, f in mlplane_ops.items()},
        },
        "baseline": {
            "name": (
                f"mlflow server 3.17.2 ({plan.mlflow_workers} workers, "
                f"job runner {'on' if plan.mlflow_job_runner else 'off'})"
            ),
            **mlflow,
            "peak_pss_mb": mlflow_server.peak_pss_mb,
            "peak_pss_mb_without_job_runner": mlflow_server.peak_pss_excluding_mb,
            "peak_rss_mb": mlflow_server.peak_rss_mb,
            "peak_rss_mb_without_job_runner": mlflow_server.peak_rss_excluding_mb,
            "operations": {name: f.as_dict() for name, f in mlflow_ops.items()},
        },
        "ratios": ratios,
        "cpu_per_request_ratios": cpu_ratios,
        "ratio": round(geomean, 3),
        "targets": _targets(ratios, mlplane_ops, memory_share),
        "wall_s": round(time.perf_counter() - began, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a scaled-down, shorter run")
    parser.add_argument(
        "--mlflow-workers",
        type=int,
        default=os.cpu_count() or 2,
        help="MLflow's worker processes (default: the number of CPUs)",
    )
    parser.add_argument(
        "--mlplane-workers", type=int, default=2, help="mlplane's worker processes (default 2)"
    )
    args = parser.parse_args()
    plan = Plan(args.quick, args.mlflow_workers, args.mlplane_workers)
    print(json.dumps(asyncio.run(main(plan))))
