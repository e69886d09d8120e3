"""What the security tests act on: two teams, their API keys, and each team's objects in
every service, made once per stack through the platform's own routes.

Team B's objects carry `World.marker_b` in every free-text field they have (model
descriptions and tags, a version's status message, a policy's denied license, an
exception's owner, dead letters' bodies, a deployment's reason and requester, a
deployer freeze window's reason), so an answer that leaks any of them to team
A is caught by looking for the marker or team B's name in the body.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from mlplane_contracts import events as ev
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import CloudEvent, new_event
from mlplane_contracts.examples import example_payload
from mlplane_contracts.scopes import (
    ALL_SCOPES,
    DEPLOY_APPROVE,
    DEPLOY_WRITE,
    EVENTS_SUBSCRIBE,
    MODELS_READ,
    MODELS_WRITE,
)
from mlplane_contracts.topology import (
    CI_RUN_COMPLETED,
    DEPLOYMENT_REQUESTED,
    MODEL_ALIAS_CHANGED,
    MODEL_VERSION_REGISTERED,
)
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import signed_identity

from .stack import BOOTSTRAP_KEY, Stack

WAIT_S = 60.0
ARTIFACT = b"security-matrix-model-bytes"
DEAD_LETTER_TYPES = {
    "registry": CI_RUN_COMPLETED,
    "builder": MODEL_VERSION_REGISTERED,
    "scanner": "io.mlplane.image.built.v1",
    "gateway": MODEL_ALIAS_CHANGED,
    "deployer": DEPLOYMENT_REQUESTED,
}
# Versions the deployer alone learns of (delivered to it): far from the registry's own.
DEPLOYABLE_VERSIONS = itertools.count(100)
# Newer than any scan policy the scanner gives a verdict under here, so never outdated.
SCAN_POLICY_VERSION = 10_000
REQUESTER = "user:requester"
# Team A's deployer rules: nothing waits for a cluster's health; prod waits for one approval.
RELAXED_RULES = {
    "staging": {"require_healthy_in_previous": False},
    "prod": {
        "require_healthy_in_previous": False,
        "approvals_required": 1,
        "require_lineage": True,
    },
}


@dataclass
class TeamObjects:
    """One team's standing objects (never changed by the matrix)."""

    team: str
    marker: str
    model: str = ""
    alias: str = "champion"
    upload_id: str = ""
    build_id: int = 0
    digest: str = ""
    finding_id: str = ""
    deployment_id: str = ""
    """A deployment committed to dev (team A's may be rolled back by the matrix)."""
    dead_letters: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    stack: Stack
    a: TeamObjects
    b: TeamObjects
    keys: dict[str, str] = field(default_factory=dict)
    """`a_admin` (every scope), `a_read`, `a_write` (read + write, no admin), `a_other`
    (events:subscribe only), `a_deploy` (read + deploy:write), `a_approver` (read +
    deploy:approve), `b_admin`: API keys the gateway issued."""
    committed_pool: list[str] = field(default_factory=list)
    """Team A's dev deployments committed ahead, each promoted once by the matrix."""

    @property
    def marker_b(self) -> str:
        return self.b.marker

    def token(
        self, service: str, team: str | None, scopes: frozenset[str] | set[str] = ALL_SCOPES
    ) -> dict[str, str]:
        """Headers carrying a valid identity for `service`, as the gateway signs it."""
        identity = signed_identity(
            service, team=team, scopes=scopes, secret=self.stack.identity_secret
        )
        return {IDENTITY_HEADER: identity}

    def direct(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call straight at `service` (path under `/<service>`) as team A's admin."""
        headers = {**self.token(service, self.a.team), **kwargs.pop("headers", {})}
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            return client.request(method, f"/{service}{path}", headers=headers, **kwargs)

    def as_team(self, team: TeamObjects, service: str, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.token(service, team.team), **kw.pop("headers", {})}
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            answer = client.request(method, f"/{service}{path}", headers=headers, **kw)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    # -- fresh objects for the admitted calls that consume what they touch ------------

    def fresh_model(self, team: TeamObjects | None = None) -> str:
        owner = team or self.a
        name = f"f-{uuid.uuid4().hex[:10]}"
        self.as_team(owner, "registry", "POST", "/models", json={"name": name})
        return name

    def fresh_version(self, model: str, team: TeamObjects | None = None) -> int:
        owner = team or self.a
        body = version_body(owner.team, owner.marker)
        made = self.as_team(owner, "registry", "POST", f"/models/{model}/versions", json=body)
        return int(made["version"])

    def upload(self, model: str, team: TeamObjects | None = None) -> dict[str, Any]:
        """An artifact upload of `model`, its one part written; not completed."""
        owner = team or self.a
        plan = self.as_team(
            owner,
            "registry",
            "POST",
            f"/models/{model}/uploads",
            json={
                "size_bytes": len(ARTIFACT),
                "sha256": hashlib.sha256(ARTIFACT).hexdigest(),
                "filename": "model.onnx",
            },
        )
        with httpx.Client(timeout=30) as client:
            written = client.put(plan["parts"][0]["url"], content=ARTIFACT)
        assert written.status_code == 200, written.text
        plan["etag"] = written.headers["etag"]
        return dict(plan)

    def completed_upload(self, model: str, team: TeamObjects | None = None) -> dict[str, Any]:
        owner = team or self.a
        plan = self.upload(model, owner)
        done = self.as_team(
            owner,
            "registry",
            "POST",
            f"/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": [{"number": 1, "etag": plan["etag"]}]},
        )
        return dict(done)

    def finished_build(self) -> int:
        """Team A's build, once no try of it is pending or running."""
        return self.wait_build(self.a)

    def wait_build(self, team: TeamObjects) -> int:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            page = self.as_team(team, "builder", "GET", f"/builds?model={team.model}")
            finished = [b for b in page["builds"] if b["status"] in ("succeeded", "failed")]
            if finished and len(finished) == len(page["builds"]):
                return int(finished[0]["id"])
            time.sleep(0.1)
        raise AssertionError(f"no finished build of {team.team} within {WAIT_S:g} s")

    def fresh_exception(self) -> str:
        finding = f"CVE-2099-{uuid.uuid4().int % 100000:05d}"
        self.as_team(
            self.a, "scanner", "POST", "/policies/dev/exceptions", json=exception_body(finding)
        )
        return finding

    # -- the deployer ---------------------------------------------------------------------

    def deployable(self, team: TeamObjects | None = None) -> int:
        """A new version of the team's model that the deployer may deploy: registered with
        lineage, built and scanned `passed`, delivered to the deployer alone."""
        owner = team or self.a
        version = next(DEPLOYABLE_VERSIONS)
        self.stack.deliver("deployer", deployable_events(owner, version))
        return version

    def request_deployment(
        self,
        environment: str,
        team: TeamObjects | None = None,
        *,
        principal: str = REQUESTER,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """A deployment of a new version, requested straight at the deployer by `principal`."""
        owner = team or self.a
        body: dict[str, Any] = {
            "model": owner.model,
            "version": self.deployable(owner),
            "environment": environment,
        }
        if reason is not None:
            body["reason"] = reason
        identity = signed_identity(
            "deployer", team=owner.team, principal=principal, secret=self.stack.identity_secret
        )
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            made = client.post(
                "/deployer/deployments", json=body, headers={IDENTITY_HEADER: identity}
            )
        assert made.status_code == 201, made.text
        return dict(made.json())

    def wait_committed(self, team: TeamObjects, deployment_ids: list[str]) -> None:
        deadline = time.monotonic() + WAIT_S
        waiting = set(deployment_ids)
        while waiting and time.monotonic() < deadline:
            for deployment_id in list(waiting):
                found = self.as_team(team, "deployer", "GET", f"/deployments/{deployment_id}")
                assert found["phase"] in ("pending", "committed"), found
                if found["phase"] == "committed":
                    waiting.discard(deployment_id)
            time.sleep(0.1)
        assert not waiting, f"deployments of {team.team} never committed: {waiting}"

    def committed_deployment(self) -> str:
        """A dev deployment of team A, committed (from the pool made ahead, else now)."""
        if not self.committed_pool:
            made = self.request_deployment("dev")["id"]
            self.wait_committed(self.a, [made])
            return str(made)
        return self.committed_pool.pop()

    def waiting_for_approval(self) -> str:
        """A prod deployment of team A someone else requested, waiting for one approval."""
        made = self.request_deployment("prod")
        assert made["waiting_for_approval"] is True, made
        return str(made["id"])

    def fresh_alias(self) -> str:
        alias = f"al-{uuid.uuid4().hex[:8]}"
        self.as_team(
            self.a,
            "registry",
            "PUT",
            f"/models/{self.a.model}/aliases/{alias}",
            json={"version": 1},
        )
        return alias


def version_body(team: str, marker: str) -> dict[str, Any]:
    commit = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
    return {
        "framework": "onnx",
        "artifact": {
            "uri": f"s3://models/{team}/{commit}/model.onnx",
            "size_bytes": 1024,
            "sha256": hashlib.sha256(commit.encode()).hexdigest(),
        },
        "lineage": {
            "git_repository": "https://git.example.com/ml/fraud",
            "commit_sha": commit,
            "ci_run_url": "https://ci.example.com/runs/1",
        },
        "status_message": f"status {marker}",
        "tags": {"owner": marker},
    }


def freeze_window(marker: str) -> dict[str, str]:
    """A freeze window long past (it blocks nothing) whose reason carries `marker`."""
    return {
        "start": "2020-01-01T00:00:00Z",
        "end": "2020-01-02T00:00:00Z",
        "reason": f"freeze of {marker}",
    }


def exception_body(finding: str, owner: str = "security-tests") -> dict[str, Any]:
    return {
        "finding_id": finding,
        "owner": owner,
        "reason": "accepted for the matrix",
        "expires_at": "2099-01-01T00:00:00Z",
    }


def vex_document(digest: str) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": f"https://vex.example.com/{uuid.uuid4().hex}",
        "author": "security-tests",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2099-00001"},
                "products": [{"@id": digest}],
                "status": "not_affected",
                "justification": "component_not_present",
            }
        ],
    }


def deployable_events(owner: TeamObjects, version: int) -> list[CloudEvent]:
    """What the deployer learns before a version may deploy: registered, built, scanned."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    subject = f"models/{owner.team}/{owner.model}/versions/{version}"
    digest = (
        "sha256:" + hashlib.sha256(f"{owner.team}:{owner.model}:{version}".encode()).hexdigest()
    )
    image = ev.ImageReference(
        repository=f"registry.local:5000/{owner.team}/{owner.model}", digest=digest
    )
    registered = ev.ModelVersionRegistered(
        team=owner.team,
        model=owner.model,
        version=version,
        artifact=ev.ModelArtifact(
            uri=f"s3://models/{owner.team}/{version}/model.onnx",
            sha256="ab" * 32,
            size_bytes=1024,
            framework=ev.ModelFramework.ONNX,
        ),
        lineage=ev.Lineage(
            git_repository="https://git.example.com/ml/fraud",
            commit_sha="c" * 40,
            ci_run_url="https://ci.example.com/runs/1",
        ),
        registered_by="service:ci:security",
        registered_at=at,
    )
    built = ev.ImageBuilt(
        team=owner.team,
        model=owner.model,
        version=version,
        image=image,
        base_image=image,
        layers=(ev.ImageLayer(digest=digest, size_bytes=1, media_type="application/x-tar"),),
        size_bytes=1,
        backend=ev.BuildBackend.OCI_APPEND,
        built_at=at + timedelta(minutes=1),
    )
    scanned = ev.ImageScanned(
        team=owner.team,
        model=owner.model,
        version=version,
        image=image,
        verdict=ev.ScanVerdict.PASSED,
        counts=ev.SeverityCounts(),
        report_uri="file:///reports/security.json",
        scanner_version="0.76.0",
        scanned_at=at + timedelta(minutes=2),
        policy_version=SCAN_POLICY_VERSION,
    )
    return [
        new_event(registered, source="/mlplane/registry", subject=subject),
        new_event(built, source="/mlplane/builder", subject=subject),
        new_event(scanned, source="/mlplane/scanner", subject=subject),
    ]


def _create_key(stack: Stack, team: str, scopes: list[str]) -> str:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        made = client.post(
            "/v1/keys",
            json={"team": team, "name": f"sec-{uuid.uuid4().hex[:6]}", "scopes": scopes},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _publish_image_built(world: World, owner: TeamObjects) -> None:
    payload = example_payload("io.mlplane.image.built.v1")
    assert isinstance(payload, ev.ImageBuilt)
    image = payload.image.model_copy(update={"digest": owner.digest})
    built = payload.model_copy(
        update={"team": owner.team, "model": owner.model, "version": 1, "image": image}
    )
    message = encode(
        new_event(built, source="/mlplane/builder", subject=f"models/{owner.model}", sequence=1)
    )
    outbound = OutboundMessage(
        routing_key=message.routing_key,
        body=message.body,
        headers=message.headers,
        message_id=message.message_id,
        content_type=message.content_type,
    )
    transport = world.stack.platform.transport

    async def publish() -> None:
        await transport.publish([outbound])

    world.stack.run(publish)


def team_names(suffix: str) -> tuple[str, str]:
    """Team A's and team B's names for a world made with `suffix`."""
    return f"sa-{suffix}", f"sb-{suffix}"


def build_world(stack: Stack, suffix: str) -> World:
    """Keys, models, versions, aliases, uploads, builds, scans, policies and dead letters
    of team A and team B on `stack`. Raises AssertionError when something is not made."""
    team_a, team_b = team_names(suffix)
    world = World(
        stack,
        a=TeamObjects(team=team_a, marker=f"MARKERA{suffix}"),
        b=TeamObjects(team=team_b, marker=f"MARKERB{suffix}"),
    )
    all_scopes = sorted(ALL_SCOPES)
    world.keys = {
        "a_admin": _create_key(stack, world.a.team, all_scopes),
        "a_read": _create_key(stack, world.a.team, [MODELS_READ]),
        "a_write": _create_key(stack, world.a.team, [MODELS_READ, MODELS_WRITE]),
        "a_other": _create_key(stack, world.a.team, [EVENTS_SUBSCRIBE]),
        "a_deploy": _create_key(stack, world.a.team, [MODELS_READ, DEPLOY_WRITE]),
        "a_approver": _create_key(stack, world.a.team, [MODELS_READ, DEPLOY_APPROVE]),
        "b_admin": _create_key(stack, world.b.team, all_scopes),
    }
    for owner, prefix in ((world.a, "ma"), (world.b, "mb")):
        owner.model = f"{prefix}-{suffix}"
        world.as_team(
            owner,
            "registry",
            "POST",
            "/models",
            json={
                "name": owner.model,
                "description": f"model of {owner.marker}",
                "tags": {"owner": owner.marker},
            },
        )
        artifact = world.completed_upload(owner.model, owner)
        body = version_body(owner.team, owner.marker)
        body["artifact"] = {
            "uri": artifact["uri"],
            "size_bytes": artifact["size_bytes"],
            "sha256": artifact["sha256"],
        }
        world.as_team(owner, "registry", "POST", f"/models/{owner.model}/versions", json=body)
        world.as_team(
            owner,
            "registry",
            "PUT",
            f"/models/{owner.model}/aliases/{owner.alias}",
            json={"version": 1},
        )
        owner.upload_id = world.upload(owner.model, owner)["upload_id"]
        owner.digest = "sha256:" + hashlib.sha256(owner.marker.encode()).hexdigest()
        _publish_image_built(world, owner)
        # Each team's own id: a cross-team delete must not find the caller's own one.
        owner.finding_id = f"CVE-2099-{1 if owner is world.a else 2}{suffix[:4]}"
        world.as_team(
            owner,
            "scanner",
            "PUT",
            "/policies/prod",
            json={
                "max_severity": "high",
                "license_deny": [f"LicenseRef-{owner.marker}"],
                "block_when_vulnerabilities_not_assessed": True,
            },
        )
        world.as_team(
            owner,
            "scanner",
            "POST",
            "/policies/prod/exceptions",
            json=exception_body(owner.finding_id, owner=f"owner {owner.marker}"),
        )
        for service, event_type in DEAD_LETTER_TYPES.items():
            stack.plant_dead_letter(
                service, event_type, {"team": owner.team, "note": f"letter of {owner.marker}"}
            )
    for environment, rules in RELAXED_RULES.items():
        world.as_team(world.a, "deployer", "PUT", f"/policies/{environment}", json=rules)
    world.as_team(
        world.b,
        "deployer",
        "PUT",
        "/policies/dev",
        json={"freeze_windows": [freeze_window(world.b.marker)]},
    )
    for owner in (world.a, world.b):
        owner.deployment_id = world.request_deployment(
            "dev", owner, principal=f"user:{owner.marker}", reason=f"for {owner.marker}"
        )["id"]
    world.committed_pool = [world.request_deployment("dev")["id"] for _ in range(2)]
    world.wait_committed(world.a, [world.a.deployment_id, *world.committed_pool])
    world.wait_committed(world.b, [world.b.deployment_id])
    for owner in (world.a, world.b):
        owner.build_id = world.wait_build(owner)
        _wait_scan(world, owner)
        for service in DEAD_LETTER_TYPES:
            owner.dead_letters[service] = _letter_of(world, owner, service)
    return world


def _wait_scan(world: World, owner: TeamObjects) -> None:
    deadline = time.monotonic() + WAIT_S
    headers = world.token("scanner", owner.team)
    with httpx.Client(base_url=world.stack.url, timeout=30) as client:
        while time.monotonic() < deadline:
            if client.get(f"/scanner/scans/{owner.digest}", headers=headers).status_code == 200:
                return
            time.sleep(0.1)
    raise AssertionError(f"the scan of {owner.team}'s image was never recorded")


def _letter_of(world: World, owner: TeamObjects, service: str) -> str:
    if service == "gateway":
        headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    else:
        headers = world.token(service, None)
    with httpx.Client(base_url=world.stack.url, timeout=30) as client:
        listed = client.get(f"/{service}/dead-letters?limit=1000", headers=headers)
    assert listed.status_code == 200, listed.text
    for letter in listed.json()["dead_letters"]:
        if owner.marker in letter["body"] and json.loads(letter["body"])["team"] == owner.team:
            return str(letter["id"])
    raise AssertionError(f"no dead letter of {owner.team} in {service}")
