"""The producers' real use cases, driven over the hosted platform's HTTP routes, so every
event type some installed service emits is emitted by that service's own code.

What each step makes its producer emit (then the bus carries it on, and the next
producer reacts as it would in production):

- gateway: a GitHub webhook (the custom `mlplane.run` event, signed with the team's
  secret) -> `ci.run.completed`;
- registry: that run registers a version -> `model.version.registered`; an alias set
  through its API -> `model.alias.changed`;
- builder: the version's image built into the embedded OCI layout ->
  `image.build_started`, `image.built`; a second run whose framework's base image lies
  on a registry that does not answer -> `image.build_failed`;
- scanner: Trivy on the built image -> `image.scanned`;
- gateway: a deployment asked for at `POST /v1/teams/{team}/deployment-requests` ->
  `deployment.requested`;
- deployer: that deployment decided and committed -> `deployment.status_changed`;
- drift (when installed): a reference for the version, then a window of shifted
  prediction samples -> `drift.detected`.

Calls go straight to each service's routes with an identity signed as the gateway
signs it, except the gateway's own routes (API key, webhook signature).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from mlplane_contracts import events as ev
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import TEST_IDENTITY_SECRET, signed_identity

from .hosting import BOOTSTRAP_KEY, Hosted

WAIT_S = 120.0
POLL_S = 0.1
# Port 9 (discard) on the loopback: nothing listens, the connection is refused at once.
UNREACHABLE_BASE = "127.0.0.1:9/contract/missing-base@sha256:" + "0" * 64
DRIFT_REFERENCE_ROWS = 500
DRIFT_WINDOW_ROWS = 300
FAILING_FRAMEWORK = "onnx"
BUILT_FRAMEWORK = "sklearn"

ENVIRONMENT = {
    # The secret the tests sign identities with (mlplane_testing.identity), whatever the
    # caller's environment says.
    "MLPLANE_IDENTITY_SECRET": TEST_IDENTITY_SECRET,
    "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
    "MLPLANE_GATEWAY_INITIAL_ADMIN_KEY": "false",
    # One try each: a failure is reported at once instead of after back-offs.
    "MLPLANE_BUILDER_BUILD_ATTEMPTS": "1",
    "MLPLANE_BUILDER_REGISTRY_RETRY_ATTEMPTS": "1",
    "MLPLANE_BUILDER_BASE_IMAGES": f"{FAILING_FRAMEWORK}={UNREACHABLE_BASE}",
    "MLPLANE_SCANNER_SCAN_ATTEMPTS": "1",
    # The platform is called in process, not served: the deployer's manifest scan (an
    # HTTP call to the scanner, tested in the deployer's own suite) has nowhere to go.
    "MLPLANE_DEPLOYER_MANIFEST_SCAN": "off",
}


class Driver:
    """Calls the hosted platform as team `team`."""

    def __init__(self, hosted: Hosted, client: httpx.AsyncClient, team: str) -> None:
        self.hosted = hosted
        self.client = client
        self.team = team
        self.model = ""

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200, 201),
        **kw: Any,
    ) -> Any:
        """`method /<service><path>` with a signed identity of the team; the JSON answer."""
        headers = {
            IDENTITY_HEADER: signed_identity(service, team=self.team),
            **kw.pop("headers", {}),
        }
        answer = await self.client.request(method, f"/{service}{path}", headers=headers, **kw)
        assert answer.status_code in expect, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    async def upload(self, model: str, content: bytes, filename: str) -> dict[str, Any]:
        """`content` uploaded through the registry's signed part URLs; the artifact."""
        plan = await self.call(
            "registry",
            "POST",
            f"/models/{model}/uploads",
            json={
                "size_bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "filename": filename,
            },
        )
        parts = []
        offset = 0
        for part in plan["parts"]:
            chunk = content[offset : offset + part["size_bytes"]]
            offset += part["size_bytes"]
            # The URL carries its own signature: no identity, as CI would send it.
            put = await self.client.put(part["url"], content=chunk)
            assert put.status_code == 200, (put.status_code, put.text)
            parts.append({"number": part["number"], "etag": put.headers["etag"]})
        artifact: dict[str, Any] = await self.call(
            "registry",
            "POST",
            f"/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": parts},
        )
        return artifact

    async def webhook_secret(self) -> str:
        answer = await self.client.put(
            f"/v1/teams/{self.team}/webhook-secret",
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["secret"])

    async def ci_run(
        self, secret: str, model: str, run_id: str, artifact: dict[str, Any], framework: str
    ) -> None:
        """A training run's end, as GitHub delivers the custom `mlplane.run` event."""
        body = json.dumps(
            {
                "model": model,
                "run_id": run_id,
                "conclusion": "succeeded",
                "completed_at": "2026-11-30T10:15:00Z",
                "artifact": {
                    "uri": artifact["uri"],
                    "sha256": artifact["sha256"],
                    "size_bytes": artifact["size_bytes"],
                    "framework": framework,
                },
                "lineage": {
                    "git_repository": "https://git.example.com/acme/fraud",
                    "commit_sha": hashlib.sha1(run_id.encode()).hexdigest(),
                    "ci_run_url": f"https://ci.example.com/acme/fraud/runs/{run_id}",
                },
            }
        ).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        answer = await self.client.post(
            f"/v1/webhooks/github/{self.team}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "mlplane.run",
                "X-GitHub-Delivery": uuid.uuid4().hex,
                "X-Hub-Signature-256": signature,
            },
        )
        assert answer.status_code == 202, (answer.status_code, answer.text)

    async def until(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not await check():
            if time.monotonic() > deadline:
                kinds = sorted({p.routing_key for p in self.hosted.published})
                raise AssertionError(f"{what}: not within {WAIT_S:g} s (published: {kinds})")
            await asyncio.sleep(POLL_S)

    async def request_deployment(self, model: str, version: int, environment: str) -> str:
        """The id of a deployment asked for through the gateway (`deployment.requested`)
        and taken by the deployer. The deployer learns the verdict from `image.scanned` a
        moment after the registry and rejects what it does not know yet: asked again then."""
        deployment = ""

        async def taken() -> bool:
            nonlocal deployment
            answer = await self.client.post(
                f"/v1/teams/{self.team}/deployment-requests",
                json={"model": model, "version": version, "environment": environment},
                headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
            )
            assert answer.status_code == 202, (answer.status_code, answer.text)
            deployment = answer.json()["deployment_id"]
            rejected = self.phase(deployment, "rejected")
            signed = {IDENTITY_HEADER: signed_identity("deployer", team=self.team)}
            while not await rejected():
                read = await self.client.get(f"/deployer/deployments/{deployment}", headers=signed)
                if read.status_code == 200:
                    return True
                assert read.status_code == 404, (read.status_code, read.text)
                await asyncio.sleep(POLL_S)
            return False

        await self.until("a requested deployment taken by the deployer", taken)
        return deployment

    def phase(self, deployment: str, phase: str) -> Callable[[], Awaitable[bool]]:
        """Whether the deployer announced `deployment` in `phase`."""

        async def check() -> bool:
            return any(
                p.routing_key == ev.DEPLOYMENT_STATUS_CHANGED
                and json.loads(p.body).get("deployment_id") == deployment
                and json.loads(p.body).get("phase") == phase
                for p in self.hosted.published
            )

        return check

    def emitted(self, event_type: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(p.routing_key == event_type for p in self.hosted.published)

        return check


async def drive(hosted: Hosted, client: httpx.AsyncClient) -> Driver:
    """Every producer use case above, in the order the platform's journey takes them."""
    team = f"contract-{uuid.uuid4().hex[:6]}"
    model = "fraud"
    driver = Driver(hosted, client, team)
    # No vulnerability database here: let `prod` accept an image whose vulnerabilities
    # were not assessed, so the scanned image can be deployed (as tests/e2e does).
    await driver.call(
        "scanner",
        "PUT",
        "/policies/prod",
        json={"max_severity": "high", "block_when_vulnerabilities_not_assessed": False},
    )
    await driver.call("registry", "POST", "/models", json={"name": model}, expect=(201,))
    secret = await driver.webhook_secret()
    built = await driver.upload(model, b"\x80\x04\x95contract\x00" + bytes(range(256)) * 4, "m.pkl")
    await driver.ci_run(secret, model, "1001.1", built, BUILT_FRAMEWORK)
    await driver.until("the registered version scanned", driver.emitted(ev.IMAGE_SCANNED))

    failing = await driver.upload(model, b"contract-onnx-" + bytes(range(256)), "m.onnx")
    await driver.ci_run(secret, model, "1002.1", failing, FAILING_FRAMEWORK)

    await driver.call("registry", "PUT", f"/models/{model}/aliases/champion", json={"version": 1})

    deployment = await driver.request_deployment(model, 1, "dev")
    await driver.until("the failing build reported", driver.emitted(ev.IMAGE_BUILD_FAILED))
    await driver.until(
        "the requested deployment's commit announced", driver.phase(deployment, "committed")
    )
    driver.model = model
    if "drift" in hosted.schemas:
        await drive_drift(driver, model)
    return driver


def _rows(count: int, seed: int, shift: float) -> list[dict[str, Any]]:
    """`amount` ~ N(shift, 1), `score` ~ U(shift, shift + 1), `channel` over x, y, z
    (only x when shifted): a reference, or a window whose every feature moved."""
    rng = random.Random(seed)
    channels = ["x"] if shift else ["x", "y", "z"]
    return [
        {
            "amount": rng.gauss(shift, 1.0),
            "score": shift + rng.random(),
            "channel": rng.choice(channels),
        }
        for _ in range(count)
    ]


async def drive_drift(driver: Driver, model: str) -> None:
    """drift: a reference for version 1, then a window of shifted samples in `dev` ->
    `drift.detected`."""
    reference = _rows(DRIFT_REFERENCE_ROWS, seed=1, shift=0.0)
    csv = "amount,score,channel\n" + "".join(
        f"{r['amount']},{r['score']},{r['channel']}\n" for r in reference
    )
    await driver.call(
        "drift",
        "PUT",
        f"/models/{model}/versions/1/reference",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    await driver.call(
        "drift",
        "PUT",
        f"/models/{model}/environments/dev/window",
        json={"count": DRIFT_WINDOW_ROWS},
    )
    shifted = _rows(DRIFT_WINDOW_ROWS, seed=2, shift=2.0)
    await driver.call(
        "drift",
        "POST",
        "/samples",
        json={
            "model": model,
            "version": 1,
            "environment": "dev",
            "samples": [{"features": row} for row in shifted],
        },
        expect=(202,),
    )
    await driver.until("the shifted window's drift reported", driver.emitted(ev.DRIFT_DETECTED))


async def effects(driver: Driver) -> dict[str, Any]:
    """What the consumers made of the events, read back through their own APIs."""
    model = driver.model
    return {
        "registry_v1": await driver.call("registry", "GET", f"/models/{model}/versions/1"),
        "registry_v2": await driver.call("registry", "GET", f"/models/{model}/versions/2"),
        "deployments": await driver.call("deployer", "GET", "/deployments"),
    }
