"""The journey from a signed webhook to a rollback on drift, in one trace: the steps and
the trace's checks, shared by every way the platform is launched (test_journey.py).

The platform runs on the real infrastructure: PostgreSQL (a throwaway database), Redis
(the gateway's rate limits), S3 (one bucket
the platform makes at start, the registry's, scanner's and drift service's objects each
under the service's prefix; deleted after), the
OCI registry (the builder pushes, the scanner pulls with Trivy), a bare git repository
as the GitOps remote, and the Kubernetes API stand-in whose Argo CD controller syncs
what the deployer commits; the bus is RabbitMQ (a virtual host of the test's) when
`amqp_url` is given, else the in-process bus `make run` uses. A signed GitHub webhook
registers a version; it is built, scanned, deployed to `dev` and becomes `healthy`;
prediction samples with a shift close a drift window; `drift.detected` makes the
deployer commit the rollback. Every request the test makes carries one `traceparent`,
so every span of the journey, HTTP and event handlers alike, must land in that one
trace at the OTLP receiver the test runs, each with its parent there, made by the
service named for it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_testing.kube_api import KubeApiStandIn
from mlplane_testing.s3_server import S3Endpoint

from .conftest import MLPLANE
from .otlp import OtlpReceiver, ReceivedSpan, ancestor_names

TEAM = "default"
MODEL = "journey"
WITHIN_S = 240.0
REDIS_URL = os.environ.get("MLPLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
LINEAGE = {
    "git_repository": "https://git.example.com/acme/journey",
    "commit_sha": "7a1c2a9b7d4e5f60718293a4b5c6d7e8f9012345",
    "ci_run_url": "https://ci.example.com/acme/journey/runs/3",
}
SERVICES = ("gateway", "registry", "builder", "scanner", "deployer", "drift")


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _free_port_run(width: int = 6) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        try:
            for port in range(base, base + width):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


@dataclass
class Journey:
    """A launched platform: where it answers, its data, what it printed, and the trace."""

    url: str
    data_dir: Path
    lines: list[str]
    trace_id: str
    traceparent: str
    receiver: OtlpReceiver
    one_process: bool
    """`mlplane up` (every service exports as `mlplane`), not `mlplane up --processes`."""

    def client(self) -> httpx.Client:
        key = (self.data_dir / "gateway" / "initial-admin-key").read_text().strip()
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "traceparent": self.traceparent},
            timeout=60.0,
        )

    def tail(self) -> str:
        kept = [line for line in self.lines if "mlplane.access" not in line]
        return "".join(line[:500] for line in kept[-60:])


@asynccontextmanager
async def launched(
    *,
    data_dir: Path,
    database_url: str,
    amqp_url: str | None,
    s3: S3Endpoint,
    bucket: str,
    oci_url: str,
    gitops: Path,
) -> AsyncIterator[Journey]:
    """`mlplane up --processes` on RabbitMQ at `amqp_url`, or with None `mlplane up` (what
    `make run` starts: one process, the in-process bus); served until the block ends,
    then stopped with SIGTERM."""
    trace_id, traceparent = _traceparent()
    port = _free_port_run()
    with OtlpReceiver() as receiver:
        async with (
            KubeApiStandIn().serve() as kube,
            kube.argocd(repos={str(gitops): gitops}).running(),
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "TRIVY_"))}
            env.update(
                PYTHONUNBUFFERED="1",
                MLPLANE_DATA_DIR=str(data_dir),
                MLPLANE_HTTP_PORT=str(port),
                MLPLANE_DATABASE_URL=database_url,
                MLPLANE_OTLP_ENDPOINT=receiver.url,
                OTEL_BSP_SCHEDULE_DELAY="100",
                MLPLANE_GATEWAY_REDIS_URL=REDIS_URL,
                MLPLANE_REGISTRY_S3_ENDPOINT_URL=s3.url,
                MLPLANE_REGISTRY_S3_BUCKET=bucket,
                MLPLANE_REGISTRY_S3_ACCESS_KEY=s3.access_key,
                MLPLANE_REGISTRY_S3_SECRET_KEY=s3.secret_key,
                MLPLANE_BUILDER_REGISTRY_URL=oci_url,
                MLPLANE_BUILDER_REPOSITORY_TEMPLATE=f"journey-{uuid4().hex[:8]}/{{team}}/{{model}}",
                MLPLANE_BUILDER_S3_ENDPOINT_URL=s3.url,
                MLPLANE_BUILDER_S3_ACCESS_KEY=s3.access_key,
                MLPLANE_BUILDER_S3_SECRET_KEY=s3.secret_key,
                MLPLANE_BUILDER_REGISTRY_ARTIFACT_STORE=f"s3://{bucket}/registry/",
                # The one bucket of the platform, each service under its own prefix.
                MLPLANE_SCANNER_S3_ENDPOINT_URL=s3.url,
                MLPLANE_SCANNER_S3_BUCKET=bucket,
                MLPLANE_SCANNER_S3_ACCESS_KEY=s3.access_key,
                MLPLANE_SCANNER_S3_SECRET_KEY=s3.secret_key,
                MLPLANE_DRIFT_S3_ENDPOINT_URL=s3.url,
                MLPLANE_DRIFT_S3_BUCKET=bucket,
                MLPLANE_DRIFT_S3_ACCESS_KEY=s3.access_key,
                MLPLANE_DRIFT_S3_SECRET_KEY=s3.secret_key,
                MLPLANE_DEPLOYER_GITOPS_REMOTE=str(gitops),
                MLPLANE_DEPLOYER_KUBE_API_URL=kube.url,
                MLPLANE_DEPLOYER_RETRY_DELAY_S="0.5",
                MLPLANE_DEPLOYER_POLL_INTERVAL_S="0.5",
                MLPLANE_DRIFT_POLL_INTERVAL_S="0.5",
            )
            command = ["up"] if amqp_url is None else ["up", "--processes"]
            if amqp_url is not None:
                env["MLPLANE_AMQP_URL"] = amqp_url
            process = await asyncio.create_subprocess_exec(
                str(MLPLANE),
                *command,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            lines: list[str] = []
            pump = asyncio.create_task(_pump(process, lines))
            try:
                await asyncio.wait_for(_announced(lines, process), WITHIN_S)
                yield Journey(
                    url=f"http://127.0.0.1:{port}",
                    data_dir=data_dir,
                    lines=lines,
                    trace_id=trace_id,
                    traceparent=traceparent,
                    receiver=receiver,
                    one_process=amqp_url is None,
                )
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(process.wait(), 90)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
                pump.cancel()


async def _pump(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        lines.append(line.decode(errors="replace"))


async def _announced(lines: list[str], process: asyncio.subprocess.Process) -> None:
    while not any(line.startswith("mlplane is serving on") for line in lines):
        if process.returncode is not None:
            raise AssertionError("mlplane up stopped:\n" + "".join(lines[-60:]))
        await asyncio.sleep(0.2)


async def _until(what: str, journey: Journey, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(check)
        if found:
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"{what} did not happen within {WITHIN_S:g} s:\n{journey.tail()}")


def _ok(answer: httpx.Response, *statuses: int) -> Any:
    assert answer.status_code in (statuses or (200,)), f"{answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def _upload(http: httpx.Client, content: bytes) -> dict[str, Any]:
    _ok(http.post("/v1/registry/models", json={"name": MODEL}), 201)
    plan = _ok(
        http.post(
            f"/v1/registry/models/{MODEL}/uploads",
            json={
                "size_bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "filename": "model.pkl",
            },
        ),
        201,
    )
    parts = []
    for part in plan["parts"]:
        stored = httpx.put(part["url"], content=content, timeout=60.0)
        assert stored.status_code == 200, stored.text
        parts.append({"number": part["number"], "etag": stored.headers["etag"]})
    return dict(
        _ok(
            http.post(
                f"/v1/registry/models/{MODEL}/uploads/{plan['upload_id']}/complete",
                json={"parts": parts},
            )
        )
    )


def _webhook(http: httpx.Client, artifact: dict[str, Any], traceparent: str) -> None:
    secret = _ok(http.put(f"/v1/teams/{TEAM}/webhook-secret"))["secret"]
    body = json.dumps(
        {
            "model": MODEL,
            "run_id": "journey.1",
            "conclusion": "succeeded",
            "completed_at": "2026-12-05T10:00:00Z",
            "artifact": {
                "uri": artifact["uri"],
                "sha256": artifact["sha256"],
                "size_bytes": artifact["size_bytes"],
                "framework": "sklearn",
            },
            "lineage": LINEAGE,
        }
    ).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        f"{http.base_url}/v1/webhooks/github/{TEAM}".replace("//v1", "/v1"),
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "mlplane.run",
            "X-GitHub-Delivery": f"journey-{uuid4().hex[:8]}",
            "X-Hub-Signature-256": signature,
            "traceparent": traceparent,
        },
        timeout=60.0,
    )
    assert answer.status_code == 202, answer.text


def _reference_csv(rows: int, rng: random.Random) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["amount", "channel"])
    for _ in range(rows):
        writer.writerow([round(rng.gauss(100, 15), 3), rng.choice(["web", "web", "app", "shop"])])
    return out.getvalue().encode()


def _shifted_samples(rows: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "features": {"amount": round(rng.gauss(160, 15), 3), "channel": "shop"},
            "prediction": 0.5,
            "label": None,
        }
        for _ in range(rows)
    ]


async def run_to_rollback(platform: Journey, gitops: Path) -> None:
    """Webhook, build, scan, deployment to `dev`, healthy, drifted samples, rollback: each
    step awaited through the gateway, and the GitOps remote's history checked at the end."""
    rng = random.Random(7)
    with platform.client() as http:
        # Embedded Trivy has no vulnerability database: prod's verdict (the one
        # image.scanned carries) must pass unassessed images; dev rolls back on drift.
        _ok(
            http.put(
                "/v1/scanner/policies/prod",
                json={"max_severity": "high", "block_when_vulnerabilities_not_assessed": False},
            )
        )
        rules = _ok(http.get("/v1/deployer/policies/dev"))
        rules = rules.get("rules", rules)
        rules["rollback_on_drift"] = "warning"
        _ok(http.put("/v1/deployer/policies/dev", json=rules))

        artifact = _upload(http, b"\x80\x04\x95journey\x00" + bytes(range(256)) * 64)
        _webhook(http, artifact, platform.traceparent)

        def scanned() -> bool:
            answer = http.get(f"/v1/registry/models/{MODEL}/versions/1")
            return (
                answer.status_code == 200 and answer.json()["lifecycle"]["scan_verdict"] == "passed"
            )

        await _until("the build and the scan", platform, scanned)

        reference = _reference_csv(2000, rng)
        _ok(
            http.put(
                f"/v1/drift/models/{MODEL}/versions/1/reference",
                content=reference,
                headers={"content-type": "text/csv"},
            ),
            200,
            201,
        )
        _ok(
            http.put(f"/v1/drift/models/{MODEL}/environments/dev/window", json={"count": 300}),
            200,
            201,
        )

        def requested() -> dict[str, Any] | None:
            answer = http.post(
                "/v1/deployer/deployments",
                json={"model": MODEL, "version": 1, "environment": "dev"},
            )
            return answer.json() if answer.status_code in (200, 201) else None

        deployment = await _until("the deployer to accept the version", platform, requested)

        seen: list[str] = []

        def phase(wanted: str) -> Callable[[], bool]:
            def check() -> bool:
                read = http.get(f"/v1/deployer/deployments/{deployment['id']}")
                seen.append(f"{read.status_code} {read.text[:300]}")
                return read.status_code == 200 and read.json()["phase"] == wanted

            return check

        try:
            await _until("the deployment to be healthy", platform, phase("healthy"))
        except BaseException:
            print("last reads:", seen[-3:])
            raise

        answer = _ok(
            http.post(
                "/v1/drift/samples",
                json={
                    "model": MODEL,
                    "version": 1,
                    "environment": "dev",
                    "samples": _shifted_samples(300, rng),
                },
            ),
            202,
        )
        assert answer["window_closed"], answer
        await _until("the rollback on drift", platform, phase("rolled_back"))
        final = _ok(http.get(f"/v1/deployer/deployments/{deployment['id']}"))

    assert final["rolled_back_by"].startswith("drift:"), final
    log = (
        await asyncio.to_thread(
            subprocess.run,
            ["git", "-C", str(gitops), "log", "--format=%s", "main"],
            capture_output=True,
            text=True,
            check=True,
        )
    ).stdout.splitlines()
    assert log == [
        f"roll back {TEAM}/{MODEL} in dev removing v1",
        f"deploy {TEAM}/{MODEL} v1 to dev",
    ], log


async def journey_trace(platform: Journey) -> list[ReceivedSpan]:
    """The journey's trace once every hop's span and every span's parent arrived."""
    try:
        spans: list[ReceivedSpan] = await _until(
            "the rollback's spans to arrive",
            platform,
            lambda: _journey_spans(
                platform.receiver.snapshot(),
                platform.trace_id,
                platform.traceparent.split("-")[2],
            ),
        )
    except BaseException:
        trace = [s for s in platform.receiver.snapshot() if s.trace_id == platform.trace_id]
        ids = {s.span_id for s in trace}
        orphans = sorted({(s.service, s.name) for s in trace if s.parent_id not in ids})
        print("spans in the trace:", sorted({(s.service, s.name) for s in trace}))
        print("spans whose parent is not in it:", orphans)
        raise
    return spans


_HOPS = [
    ("registry", "registry process io.mlplane.ci.run.completed.v1"),
    ("builder", "builder process io.mlplane.model.version.registered.v1"),
    ("builder", "builder build"),
    ("scanner", "scanner process io.mlplane.image.built.v1"),
    ("scanner", "scanner scan"),
    ("deployer", "deployer process io.mlplane.image.scanned.v1"),
    ("drift", "drift process io.mlplane.model.version.registered.v1"),
    ("deployer", "deployer process io.mlplane.drift.detected.v1"),
]


def _journey_spans(
    spans: list[ReceivedSpan], trace_id: str, test_span: str
) -> list[ReceivedSpan] | None:
    """The trace's spans once its last hop arrived, and every parent with it: a span of
    the trace or the test's own (the `traceparent` its requests carried)."""
    trace = [s for s in spans if s.trace_id == trace_id]
    names = {s.name for s in trace}
    if not all(name in names for _, name in _HOPS):
        return None
    ids = {s.span_id for s in trace} | {test_span}
    return trace if all(s.parent_id in ids for s in trace if s.parent_id) else None


def check_trace(trace: list[ReceivedSpan], *, one_process: bool) -> None:
    """Every service has spans in the trace, each hop made by its service (the resource's
    `service.name`: the service's own, or `mlplane` for them all in one process), and the
    hops descend from the webhook and from the drift service."""
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in trace:
        by_name.setdefault(span.name, []).append(span)
    # Every service of the journey made spans in the one trace.
    if one_process:
        assert {s.service for s in trace} == {"mlplane"}, sorted({s.service for s in trace})
    else:
        assert {s.service for s in trace} >= set(SERVICES), sorted({s.service for s in trace})
    made_by = {s.attributes.get("mlplane.service") for s in trace}
    assert made_by >= set(SERVICES), sorted(map(str, made_by))
    for service, name in _HOPS:
        span = by_name[name][0]
        assert span.service == ("mlplane" if one_process else service), (name, span.service)
        assert span.attributes.get("mlplane.service") == service, (name, span.attributes)
    # The webhook is where the journey's first service span descends from.
    registered = ancestor_names(
        by_name["registry process io.mlplane.ci.run.completed.v1"][0], trace
    )
    assert any("/webhooks/github/" in name for name in registered), registered
    rollback = ancestor_names(by_name["deployer process io.mlplane.drift.detected.v1"][0], trace)
    assert any("drift" in name for name in rollback), rollback
