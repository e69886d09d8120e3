"""The deployer as the deployer benchmark runs it: its own `build` on a throwaway schema of
the real PostgreSQL, a bare repository on the local disk as the GitOps remote, requests
through its HTTP API signed as the gateway signs them (in-process ASGI: no socket), and
its real job worker (`run()`, the settings' concurrency) rendering, validating,
committing and pushing.

What a version needs before it may deploy (registered, built, scanned `passed`) is
delivered through the deployer's consumer as the bus delivers it; environments after
the first are told not to wait for the previous one's health (no cluster here).
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_deployer.deps import HostedDeployer
from mlplane_deployer.main import MIGRATIONS, build
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables, define_tables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.database import migrated_schema
from mlplane_testing.delivery import deliverer
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context
from sqlalchemy import func, select

TEAM = "bench"
REPOSITORY = "registry.bench:5000/mlplane/bench/model"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HEADERS = {"X-Mlplane-Team": TEAM, "X-Mlplane-Principal": "user:bench"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    ).stdout


def bare_repository(path: Path) -> Path:
    git(path.parent, "init", "--quiet", "--bare", "--initial-branch", "main", str(path))
    return path


def digest_of(model: str) -> str:
    return "sha256:" + hashlib.sha256(f"bench:{model}".encode()).hexdigest()


def ready_events(model: str) -> list[CloudEvent]:
    """Version 1 of `model` registered (with lineage), built and scanned `passed`."""
    subject = f"models/{TEAM}/{model}/versions/1"
    image = ev.ImageReference(repository=REPOSITORY, digest=digest_of(model))
    registered = ev.ModelVersionRegistered(
        team=TEAM,
        model=model,
        version=1,
        artifact=ev.ModelArtifact(
            uri=f"s3://models/{model}/1/model.onnx",
            sha256="ab" * 32,
            size_bytes=2048,
            framework=ev.ModelFramework.SKLEARN,
        ),
        lineage=ev.Lineage(
            git_repository="https://git.example.com/ml/bench",
            commit_sha="c" * 40,
            ci_run_url="https://ci.example.com/runs/1",
        ),
        registered_by="service:ci:bench",
        registered_at=AT,
    )
    built = ev.ImageBuilt(
        team=TEAM,
        model=model,
        version=1,
        image=image,
        base_image=image,
        layers=(
            ev.ImageLayer(
                digest=digest_of(f"{model}-layer"),
                size_bytes=10,
                media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            ),
        ),
        size_bytes=10,
        backend=ev.BuildBackend.OCI_APPEND,
        built_at=AT + timedelta(minutes=1),
    )
    scanned = ev.ImageScanned(
        team=TEAM,
        model=model,
        version=1,
        image=image,
        verdict=ev.ScanVerdict.PASSED,
        counts=ev.SeverityCounts(),
        report_uri="file:///reports/bench.json",
        scanner_version="0.76.0",
        scanned_at=AT + timedelta(minutes=2),
        policy_version=1,
    )
    return [
        new_event(registered, source="/mlplane/registry", subject=subject),
        new_event(built, source="/mlplane/builder", subject=subject),
        new_event(scanned, source="/mlplane/scanner", subject=subject),
    ]


@dataclass
class BenchDeployer:
    hosted: HostedDeployer
    http: httpx.AsyncClient
    consumer: EventConsumer
    uow_factory: UnitOfWorkFactory
    tables: DeployerTables
    remote: Path

    async def prepare(self, models: Sequence[str], environments: Sequence[str]) -> None:
        deliver = deliverer(self.consumer)
        for model in models:
            for event in ready_events(model):
                await deliver(event)
        for environment in environments[1:]:
            answer = await self.http.put(
                f"/policies/{environment}",
                json={"require_healthy_in_previous": False},
                headers=HEADERS,
            )
            answer.raise_for_status()

    async def request(self, model: str, environment: str) -> str:
        answer = await self.http.post(
            "/deployments",
            json={"model": model, "version": 1, "environment": environment},
            headers=HEADERS,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"deployment of {model} to {environment}: {answer.text}")
        return str(answer.json()["id"])

    async def phases(self) -> dict[str, int]:
        d = self.tables.deployments
        async with self.uow_factory.reading() as uow:
            rows = await uow.session.execute(select(d.c.phase, func.count()).group_by(d.c.phase))
            return {str(phase): int(count) for phase, count in rows}

    async def latencies_s(self) -> list[float]:
        """Request to recorded commit, per committed deployment."""
        d = self.tables.deployments
        async with self.uow_factory.reading() as uow:
            rows = await uow.session.execute(
                select(d.c.created_at, d.c.updated_at).where(d.c.phase == "committed")
            )
            return [(updated - created).total_seconds() for created, updated in rows]


@asynccontextmanager
async def hosted_deployer(
    database: Database, workdir: Path, **settings: Any
) -> AsyncIterator[BenchDeployer]:
    """The deployer on a fresh schema (dropped after) and a fresh bare remote under `workdir`;
    `settings` are `DeployerSettings` fields (`manifest_scan="off"` unless given)."""
    remote = bare_repository(workdir / "gitops.git")
    async with migrated_schema(database, MIGRATIONS) as schema:
        tables = define_tables(schema)
        context = service_context(
            "deployer", database, tables.messaging, data_dir=workdir / "deployer"
        )
        config = DeployerSettings(
            _env_file=None,  # type: ignore[call-arg]
            gitops_remote=str(remote),
            gitops_workdir=workdir / "clone",
            **{"manifest_scan": "off", **settings},
        )
        parts = build(context, tables, config)
        assert isinstance(parts.resources, HostedDeployer)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service_app(context, parts)),
            base_url="http://deployer.bench",
            auth=GatewayIdentity("deployer"),
            timeout=60,
        ) as http:
            yield BenchDeployer(
                parts.resources,
                http,
                EventConsumer("deployer", context.uow_factory, parts.handlers),
                context.uow_factory,
                tables,
                remote,
            )


async def run_until_committed(
    deployer: BenchDeployer, pairs: Sequence[tuple[str, str]], timeout_s: float
) -> float:
    """Request every pair while the worker runs; seconds from the first request until
    every deployment is committed (pushed). Raises RuntimeError when one fails or the
    bound passes."""
    worker = asyncio.create_task(deployer.hosted.worker.run())
    try:
        started = asyncio.get_running_loop().time()
        for model, environment in pairs:
            await deployer.request(model, environment)
        async with asyncio.timeout(timeout_s):
            while True:
                phases = await deployer.phases()
                if phases.get("failed"):
                    raise RuntimeError(f"deployments failed: {phases}")
                if phases.get("committed", 0) == len(pairs):
                    break
                await asyncio.sleep(0.01)
        return asyncio.get_running_loop().time() - started
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
