"""The registry's consumers against the real PostgreSQL, through the inbox consumer.

Events are delivered out of order and twice, as competing consumers on a quorum
queue deliver them; the version must end in the state their times say.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, EventPayload, new_event
from mlplane_registry.domain import VersionStage
from mlplane_registry.service import RegistryService
from mlplane_registry.store import RegistryTables
from mlplane_runtime.bus.base import PoisonMessage
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from sqlalchemy import text

Deliver = Callable[[CloudEvent], Awaitable[None]]

T0 = datetime(2026, 11, 1, tzinfo=UTC)
IMAGE = ev.ImageReference(repository="harbor.example.com/ml/fraud", digest="sha256:" + "e" * 64)
LINEAGE = ev.Lineage(
    git_repository="https://git.example.com/ml/fraud",
    commit_sha="c" * 40,
    ci_run_url="https://ci.example.com/runs/42",
    params={"lr": "0.1"},
    metrics={"auc": 0.91},
)


def event(data: EventPayload, source: str, sequence: int | None = None) -> CloudEvent:
    subject = f"models/{data.team}/{data.model}/versions/1"
    return new_event(data, source=source, subject=subject, sequence=sequence)


def ci_run(team: str, run_id: str = "42") -> CloudEvent:
    return new_event(
        ev.CiRunCompleted(
            team=team,
            model="fraud",
            provider=ev.CiProvider.GITHUB_ACTIONS,
            run_id=run_id,
            conclusion=ev.CiConclusion.SUCCEEDED,
            completed_at=T0,
            artifact=ev.ModelArtifact(
                uri="s3://models/fraud/1/model.onnx",
                sha256="ab" * 32,
                size_bytes=2048,
                framework=ev.ModelFramework.ONNX,
            ),
            lineage=LINEAGE,
        ),
        source="/mlplane/gateway",
        subject=f"ci/{team}/fraud/{run_id}",
    )


def build_started(team: str, seconds: int = 5) -> CloudEvent:
    data = ev.ImageBuildStarted(
        team=team,
        model="fraud",
        version=1,
        backend=ev.BuildBackend.OCI_APPEND,
        attempt=1,
        started_at=T0 + timedelta(seconds=seconds),
    )
    return event(data, "/mlplane/builder", 0)


def built(team: str, seconds: int = 10) -> CloudEvent:
    data = ev.ImageBuilt(
        team=team,
        model="fraud",
        version=1,
        image=IMAGE,
        base_image=IMAGE,
        layers=(
            ev.ImageLayer(
                digest="sha256:" + "f" * 64,
                size_bytes=10,
                media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            ),
        ),
        size_bytes=10,
        backend=ev.BuildBackend.OCI_APPEND,
        built_at=T0 + timedelta(seconds=seconds),
    )
    return event(data, "/mlplane/builder", 1)


def build_failed(team: str, seconds: int) -> CloudEvent:
    data = ev.ImageBuildFailed(
        team=team,
        model="fraud",
        version=1,
        backend=ev.BuildBackend.OCI_APPEND,
        reason="base image not found",
        retryable=False,
        failed_at=T0 + timedelta(seconds=seconds),
    )
    return event(data, "/mlplane/builder", 2)


def scanned(team: str, verdict: ev.ScanVerdict, seconds: int, sequence: int = 1) -> CloudEvent:
    data = ev.ImageScanned(
        team=team,
        model="fraud",
        version=1,
        image=IMAGE,
        verdict=verdict,
        counts=ev.SeverityCounts(),
        report_uri="s3://reports/fraud/1.json",
        scanner_version="trivy 0.58",
        scanned_at=T0 + timedelta(seconds=seconds),
    )
    return event(data, "/mlplane/scanner", sequence)


def deployment(
    team: str, env: ev.Environment, phase: ev.DeploymentPhase, seconds: int, sequence: int
) -> CloudEvent:
    data = ev.DeploymentStatusChanged(
        deployment_id=uuid4(),
        team=team,
        model="fraud",
        version=1,
        environment=env,
        phase=phase,
        changed_at=T0 + timedelta(seconds=seconds),
    )
    return event(data, "/mlplane/deployer", sequence)


async def read_version(uow_factory: UnitOfWorkFactory, tables: RegistryTables, team: str) -> Any:
    async with uow_factory() as uow:
        return await RegistryService(uow, tables).get_version(team, "fraud", 1)


async def count(database: Database, tables: RegistryTables, table: str) -> int:
    async with database.sessions() as session:
        result = await session.execute(
            text(f'SELECT count(*) FROM "{tables.metadata.schema}".{table}')
        )
        return int(result.scalar_one())


def lifecycle_events(team: str) -> list[CloudEvent]:
    return [
        build_started(team, 5),
        built(team, 10),
        scanned(team, ev.ScanVerdict.PASSED, 20),
        deployment(team, ev.Environment.DEV, ev.DeploymentPhase.SYNCING, 30, 1),
        deployment(team, ev.Environment.DEV, ev.DeploymentPhase.HEALTHY, 40, 2),
        deployment(team, ev.Environment.STAGING, ev.DeploymentPhase.HEALTHY, 50, 3),
        deployment(team, ev.Environment.DEV, ev.DeploymentPhase.ROLLED_BACK, 60, 4),
    ]


class TestCiRunCompleted:
    async def test_a_finished_run_registers_a_version_and_announces_it(
        self,
        deliver: Deliver,
        team: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
        registry_database: Database,
    ) -> None:
        await deliver(ci_run(team))
        version = await read_version(uow_factory, tables, team)
        assert version.stage is VersionStage.REGISTERED
        assert version.artifact.sha256 == "ab" * 32
        assert version.lineage.metrics == {"auc": 0.91}
        assert version.tags["ci.run_id"] == "42"
        assert await count(registry_database, tables, "outbox") == 1

    async def test_the_same_run_reported_twice_registers_one_version(
        self,
        deliver: Deliver,
        team: str,
        tables: RegistryTables,
        registry_database: Database,
    ) -> None:
        first = ci_run(team)
        await deliver(first)
        await deliver(first)  # redelivered: the inbox skips it
        await deliver(ci_run(team))  # the webhook sent again: a new event, same run
        assert await count(registry_database, tables, "model_versions") == 1
        assert await count(registry_database, tables, "outbox") == 1

    async def test_a_failed_run_registers_nothing(
        self, deliver: Deliver, team: str, tables: RegistryTables, registry_database: Database
    ) -> None:
        failed = ci_run(team)
        data = failed.data.model_copy(update={"conclusion": ev.CiConclusion.FAILED})
        await deliver(failed.model_copy(update={"data": data}))
        assert await count(registry_database, tables, "model_versions") == 0


class TestLifecycleEvents:
    @pytest.mark.parametrize("seed", range(6))
    async def test_events_delivered_out_of_order_end_in_the_right_state(
        self,
        deliver: Deliver,
        team: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
        seed: int,
    ) -> None:
        await deliver(ci_run(team))
        events = lifecycle_events(team)
        order = events[::-1] if seed == 0 else random.Random(seed).sample(events, len(events))
        for item in order:
            await deliver(item)
        version = await read_version(uow_factory, tables, team)
        assert version.stage is VersionStage.DEPLOYED
        assert version.lifecycle.scan_verdict == "passed"
        assert version.lifecycle.deployed_environments == ("staging",)
        assert version.lifecycle.deployments["dev"].phase == "rolled_back"
        assert version.lifecycle.build.image == IMAGE.reference

    async def test_a_build_start_moves_the_version_to_building(
        self, deliver: Deliver, team: str, uow_factory: UnitOfWorkFactory, tables: RegistryTables
    ) -> None:
        await deliver(ci_run(team))
        await deliver(build_started(team))
        assert (await read_version(uow_factory, tables, team)).stage is VersionStage.BUILDING
        await deliver(built(team))
        assert (await read_version(uow_factory, tables, team)).stage is VersionStage.BUILT

    async def test_every_event_delivered_twice_gives_the_same_state(
        self,
        deliver: Deliver,
        team: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
        registry_database: Database,
    ) -> None:
        await deliver(ci_run(team))
        for item in lifecycle_events(team):
            await deliver(item)
        once = await read_version(uow_factory, tables, team)
        handled = await count(registry_database, tables, "inbox")
        # Fresh ids: the same facts again, as a producer that retried would send them.
        for item in lifecycle_events(team):
            await deliver(item)
        replays = [built(team, 10), scanned(team, ev.ScanVerdict.PASSED, 20)]
        for item in replays + replays:
            await deliver(item)
        twice = await read_version(uow_factory, tables, team)
        assert twice.lifecycle == once.lifecycle
        assert await count(registry_database, tables, "model_versions") == 1
        assert await count(registry_database, tables, "inbox") > handled

    async def test_a_redelivered_event_is_skipped_by_the_inbox(
        self,
        deliver: Deliver,
        team: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
        registry_database: Database,
    ) -> None:
        await deliver(ci_run(team))
        events = [ci_run(team), *lifecycle_events(team)]
        for item in events:
            await deliver(item)
        state = await read_version(uow_factory, tables, team)
        inbox = await count(registry_database, tables, "inbox")
        for item in events:
            await deliver(item)
        assert await count(registry_database, tables, "inbox") == inbox
        assert (await read_version(uow_factory, tables, team)).etag == state.etag

    async def test_a_contradicting_event_is_refused_as_poison_with_its_reason(
        self,
        deliver: Deliver,
        team: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
    ) -> None:
        await deliver(ci_run(team))
        await deliver(built(team, 10))
        await deliver(scanned(team, ev.ScanVerdict.PASSED, 20))
        with pytest.raises(PoisonMessage, match="never rebuilt"):
            await deliver(build_failed(team, 30))
        version = await read_version(uow_factory, tables, team)
        assert version.stage is VersionStage.SCANNED

    async def test_a_deployment_after_a_failed_scan_is_refused(
        self, deliver: Deliver, team: str
    ) -> None:
        await deliver(ci_run(team))
        await deliver(scanned(team, ev.ScanVerdict.FAILED, 20))
        with pytest.raises(PoisonMessage, match="scan failed"):
            await deliver(deployment(team, ev.Environment.PROD, ev.DeploymentPhase.HEALTHY, 30, 1))

    async def test_an_event_for_a_deleted_version_is_ignored(
        self, deliver: Deliver, team: str, tables: RegistryTables, registry_database: Database
    ) -> None:
        await deliver(built(team, 10))  # no such version: nothing to move, nothing fails
        assert await count(registry_database, tables, "inbox") == 1
