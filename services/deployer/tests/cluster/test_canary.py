"""Canary steps through the stand-in's Argo CD: each step its own commit with Gateway API
`HTTPRoute` weights, the next one committed only once the Application was healthy at
the one before (and stayed so for the hold); a step that does not get healthy fails
and is reverted back to the version serving before."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.kube_api import KubeApiStandIn

from ..conftest import Hosted, hosting, status_events
from ..support.events import digest_of, git, ready
from .conftest import ask, dev_rules, in_phase, read, running, until

GATEWAY = {"name": "public", "namespace": "gateways"}


def route_weights(remote: Path, commit: str, team: str) -> dict[str, int]:
    """The HTTPRoute's backend weights at `commit`, by Service name."""
    text = git(remote, "show", f"{commit}:teams/{team}/fraud/dev/base/httproute.yaml")
    route: dict[str, Any] = yaml.safe_load(text)
    [rule] = route["spec"]["rules"]
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def commits(remote: Path) -> list[tuple[str, str]]:
    """(sha, subject) on main, newest first."""
    out = git(remote, "log", "--format=%H %s", "main")
    return [tuple(line.split(" ", 1)) for line in out.splitlines()]  # type: ignore[misc]


async def test_canary_steps_are_commits_with_a_health_gate_between_them(
    hosted: Hosted,
    team: str,
    remote: Path,
    kube: KubeApiStandIn,
    uow_factory: UnitOfWorkFactory,
    tables: DeployerTables,
) -> None:
    await dev_rules(hosted, team, canary_weights=[10, 50, 100], canary_hold_s=1, gateway=GATEWAY)
    await hosted.deliver(*ready(team, version=1), *ready(team, version=2))
    async with running(hosted), kube.argocd().running():
        first = await ask(hosted, team, 1)
        first = await in_phase(hosted, team, first["id"], "healthy")
        second = await ask(hosted, team, 2)
        done = await until(
            lambda: read(hosted, team, second["id"]),
            lambda d: d["phase"] == "healthy" and d["canary"]["complete"],
            "the canary's last step healthy",
        )
    # Nothing served before v1: it took all traffic at once, in one commit.
    assert first["canary"] == {"weights": [10, 50, 100], "step": 3, "weight": 100, "complete": True}
    assert done["canary"] == {"weights": [10, 50, 100], "step": 3, "weight": 100, "complete": True}
    landed = commits(remote)
    assert [subject for _, subject in landed] == [
        f"deploy {team}/fraud v2 to dev",
        f"canary {team}/fraud v2 at 50% in dev",
        f"canary {team}/fraud v2 at 10% in dev",
        f"deploy {team}/fraud v1 to dev",
    ]
    (last, _), (half, _), (tenth, _), _ = landed
    assert route_weights(remote, tenth, team) == {"fraud": 90, "fraud-canary": 10}
    assert route_weights(remote, half, team) == {"fraud": 50, "fraud-canary": 50}
    assert route_weights(remote, last, team) == {"fraud": 100}
    assert digest_of("fraud", 2) in git(
        remote, "show", f"{last}:teams/{team}/fraud/dev/base/deployment.yaml"
    )
    # Each step's commit came only after the step before was healthy (the gate).
    events = [
        (e["phase"], e["gitops_commit"])
        for e in await status_events(uow_factory, tables)
        if e["deployment_id"] == second["id"]
    ]
    assert events == [
        ("pending", None),
        ("committed", tenth),
        ("syncing", tenth),
        ("healthy", tenth),
        ("syncing", half),
        ("healthy", half),
        ("syncing", last),
        ("healthy", last),
    ]
    steps = [
        (h["kind"], h["phase"])
        for h in done["history"]
        if h["kind"] in ("phase", "canary_step", "gate")
    ]
    assert steps == [
        ("phase", "pending"),
        ("phase", "committed"),
        ("canary_step", None),
        ("phase", "syncing"),
        ("phase", "healthy"),
        ("gate", None),
        ("phase", "syncing"),
        ("canary_step", None),
        ("phase", "healthy"),
        ("gate", None),
        ("phase", "syncing"),
        ("canary_step", None),
        ("phase", "healthy"),
    ]
    # The gate held each step healthy for the hold before the next was committed.
    at = [
        (h["kind"], datetime.fromisoformat(h["at"]))
        for h in done["history"]
        if h["kind"] in ("gate", "canary_step")
    ]
    for (kind, opened), (next_kind, committed) in zip(at[1::2], at[2::2], strict=True):
        assert (kind, next_kind) == ("gate", "canary_step")
        assert committed - opened >= timedelta(seconds=1)


async def test_a_step_that_fails_its_gate_is_rolled_back_to_the_version_before(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
    team: str,
    remote: Path,
    kube: KubeApiStandIn,
    uow_factory: UnitOfWorkFactory,
) -> None:
    broken = digest_of("fraud", 2)  # v2's image rolls out Degraded
    async with (
        hosting(deployer_database, tables, settings, tmp_path / "before") as hosted,
        running(hosted),
        kube.argocd().running(),
    ):
        await dev_rules(hosted, team, canary_weights=[10, 50, 100], gateway=GATEWAY)
        await hosted.deliver(*ready(team, version=1), *ready(team, version=2))
        first = await ask(hosted, team, 1)
        await in_phase(hosted, team, first["id"], "healthy")
    # The deployer restarted with a short health timeout, for v2's canary alone.
    quick = settings.model_copy(
        update={"health_timeouts": {"dev": 3.0}, "gitops_workdir": tmp_path / "clone-2"}
    )
    async with (
        hosting(deployer_database, tables, quick, tmp_path / "after") as hosted,
        running(hosted),
        kube.argocd(degraded_markers=[broken]).running(),
    ):
        second = await ask(hosted, team, 2)
        rolled = await in_phase(hosted, team, second["id"], "rolled_back")
        after = await read(hosted, team, first["id"])
    assert rolled["rolled_back_by"] == "health:argocd"
    assert rolled["canary"]["step"] == 1  # the 50% step was never committed
    assert [subject for _, subject in commits(remote)] == [
        f"roll back {team}/fraud in dev to v1",
        f"canary {team}/fraud v2 at 10% in dev",
        f"deploy {team}/fraud v1 to dev",
    ]
    # The revert leaves v1 alone serving: no canary objects, no v2 image.
    tree = git(remote, "ls-tree", "-r", "--name-only", "main", "--", f"teams/{team}/fraud/dev")
    assert "canary" not in tree
    assert git(remote, "grep", "-c", broken, "main", "--", "teams", check=False) == ""
    phases = [
        e["phase"]
        for e in await status_events(uow_factory, tables)
        if e["deployment_id"] == second["id"]
    ]
    assert phases == ["pending", "committed", "syncing", "degraded", "failed", "rolled_back"]
    failed = [h for h in rolled["history"] if h["phase"] == "failed"]
    assert "not healthy within 3s" in failed[0]["detail"]
    asked = [h for h in rolled["history"] if h["kind"] == "rollback_requested"]
    assert [h["caused_by"] for h in asked] == ["health:argocd"]
    assert after["phase"] == "healthy"  # v1 is what serves again
