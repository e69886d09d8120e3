"""The deployer's event consumers: decode, call one use case, wake the worker once committed.

Each runs inside the consumer's unit of work, so the inbox row commits with its
effects: a redelivered event has no second effect. What the deployer needs to decide
(a version's lineage and image, the latest verdict per digest) is learnt here;
`deployment.requested` and an alias an environment follows ask for a deployment
through the same rules as the API; a severe enough `drift.detected` rolls back the
version serving in its environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.uow import UnitOfWork

from mlplane_deployer.service import DeploymentService, RequestOutcome


def event_handlers(
    service_of: Callable[[UnitOfWork], DeploymentService],
    wake: Callable[[], None] = lambda: None,
) -> Mapping[str, EventHandler]:
    """The deployer's handlers by event type; `wake` tells idle job workers to look."""

    def woken(outcome: RequestOutcome | None, uow: UnitOfWork) -> None:
        if outcome is not None and outcome.created:
            uow.after_commit(wake)

    async def on_version_registered(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ModelVersionRegistered)
        await service_of(uow).learn_version(data)

    async def on_image_built(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageBuilt)
        await service_of(uow).learn_image(data)

    async def on_image_scanned(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageScanned)
        await service_of(uow).learn_scan(data)

    async def on_deployment_requested(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.DeploymentRequested)
        woken(await service_of(uow).on_requested(event.id, data), uow)

    async def on_alias_changed(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ModelAliasChanged)
        woken(await service_of(uow).on_alias_changed(event.id, data), uow)

    async def on_drift_detected(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.DriftDetected)
        if await service_of(uow).on_drift(event.id, data) is not None:
            uow.after_commit(wake)  # a rollback was queued

    return {
        ev.MODEL_VERSION_REGISTERED: on_version_registered,
        ev.IMAGE_BUILT: on_image_built,
        ev.IMAGE_SCANNED: on_image_scanned,
        ev.DEPLOYMENT_REQUESTED: on_deployment_requested,
        ev.MODEL_ALIAS_CHANGED: on_alias_changed,
        ev.DRIFT_DETECTED: on_drift_detected,
    }
