"""The scanner's event consumers: decode, call one use case, never run Trivy here.

`image.built` only records a pending scan inside the consumer's unit of work (the
inbox row commits with it); the scan worker runs Trivy outside any transaction.
`deployment.status_changed` teaches the scanner which images serve where, so a
new vulnerability database rescans them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.uow import UnitOfWork

from mlplane_scanner.service import ScannerService


def event_handlers(
    service_of: Callable[[UnitOfWork], ScannerService],
    on_scan_requested: Callable[[], None] = lambda: None,
) -> Mapping[str, EventHandler]:
    """The scanner's handlers by event type; `on_scan_requested` wakes the worker once
    the scan it recorded is committed."""

    async def on_image_built(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ImageBuilt)
        if await service_of(uow).request_scan(data):
            uow.after_commit(on_scan_requested)

    async def on_deployment_status_changed(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.DeploymentStatusChanged)
        await service_of(uow).record_deployment(data)

    return {
        ev.IMAGE_BUILT: on_image_built,
        ev.DEPLOYMENT_STATUS_CHANGED: on_deployment_status_changed,
    }
