"""The registry's event consumers: decode the payload, call one use case.

Each runs inside the consumer's unit of work (the inbox row commits with the
effects), so a redelivered event has no second effect. A fact that contradicts a
version's history raises `InvalidTransition` (not retryable: dead-lettered with
its reason); a stale fact is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.uow import UnitOfWork

from mlplane_registry.domain import (
    Artifact,
    BuildFact,
    BuildStatus,
    DeploymentFact,
    EventStamp,
    ScanFact,
    TeamArtifactLocations,
)
from mlplane_registry.service import RegistryService, lineage_from_contract
from mlplane_registry.store import RegistryTables

CI_PRINCIPAL_PREFIX = "service:ci"

_log = logging.getLogger("mlplane.registry")


def _stamp(event: CloudEvent, at: datetime) -> EventStamp:
    """When the fact happened, by its producer's clock; its sequence breaks ties."""
    return EventStamp(at, -1 if event.sequence is None else event.sequence)


def event_handlers(
    tables: RegistryTables, artifact_locations: TeamArtifactLocations | None = None
) -> Mapping[str, EventHandler]:
    """The registry's handlers on `tables`, by event type (what its queue binds).

    `artifact_locations`: where teams' CI artifacts may lie besides uploads the
    registry verified. A CI run whose artifact is elsewhere is refused with
    `ArtifactRefused`: not retryable, so the event is dead-lettered with that reason.
    """

    async def on_ci_run_completed(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.CiRunCompleted)
        if data.conclusion is not ev.CiConclusion.SUCCEEDED or data.artifact is None:
            return  # nothing to register: the run failed or uploaded no model
        artifact = data.artifact
        await RegistryService(uow, tables, artifact_locations).register_version(
            data.team,
            data.model,
            framework=artifact.framework.value,
            artifact=Artifact(
                artifact.uri, artifact.size_bytes, artifact.sha256, artifact.media_type
            ),
            lineage=lineage_from_contract(data.lineage),
            registered_by=f"{CI_PRINCIPAL_PREFIX}:{data.provider.value}",
            tags={"ci.provider": data.provider.value, "ci.run_id": data.run_id},
            ci_run_id=f"{data.provider.value}:{data.run_id}",
            create_model=True,
        )

    async def on_image_build_started(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageBuildStarted)
        fact = BuildFact(BuildStatus.BUILDING, _stamp(event, data.started_at))
        await RegistryService(uow, tables).record_build(data.team, data.model, data.version, fact)

    async def on_image_built(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageBuilt)
        fact = BuildFact(BuildStatus.BUILT, _stamp(event, data.built_at), data.image.reference)
        await RegistryService(uow, tables).record_build(data.team, data.model, data.version, fact)

    async def on_image_build_failed(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageBuildFailed)
        fact = BuildFact(BuildStatus.FAILED, _stamp(event, data.failed_at), reason=data.reason)
        await RegistryService(uow, tables).record_build(data.team, data.model, data.version, fact)

    async def on_image_scanned(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageScanned)
        if data.verdict is ev.ScanVerdict.ERROR:
            # The scan could not run: it says nothing about the image, so the version
            # keeps its stage (and any earlier verdict) until a scan succeeds.
            _log.warning(
                "scan of %s (%s/%s v%s) failed to run: %s",
                data.image.reference,
                data.team,
                data.model,
                data.version,
                "; ".join(data.reasons) or "no cause given",
            )
            return
        fact = ScanFact(
            data.verdict.value,
            _stamp(event, data.scanned_at),
            data.image.reference,
            data.report_uri,
        )
        await RegistryService(uow, tables).record_scan(data.team, data.model, data.version, fact)

    async def on_deployment_status_changed(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.DeploymentStatusChanged)
        fact = DeploymentFact(
            data.phase.value, _stamp(event, data.changed_at), str(data.deployment_id)
        )
        await RegistryService(uow, tables).record_deployment(
            data.team, data.model, data.version, data.environment.value, fact
        )

    return {
        ev.CI_RUN_COMPLETED: on_ci_run_completed,
        ev.IMAGE_BUILT: on_image_built,
        ev.IMAGE_BUILD_STARTED: on_image_build_started,
        ev.IMAGE_BUILD_FAILED: on_image_build_failed,
        ev.IMAGE_SCANNED: on_image_scanned,
        ev.DEPLOYMENT_STATUS_CHANGED: on_deployment_status_changed,
    }
