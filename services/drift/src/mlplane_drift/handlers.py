"""The drift service's event consumers: decode, call one use case, never judge here.

`model.version.registered` teaches which versions exist and whose they are.
`drift.samples` folds a batch into its window in the consumer's unit of work (the inbox
row commits with the partial summary, so a redelivered batch is never counted twice);
a batch that fills a window wakes the verdict worker once committed. A batch that can
never be taken (unknown version, no reference yet, wrong schema) is dead-lettered at
once with the reason; replay it once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.uow import UnitOfWork

from mlplane_drift import metrics
from mlplane_drift.domain.samples import SampleRow
from mlplane_drift.service import DriftService


def event_handlers(
    service_name: str,
    service_of: Callable[[UnitOfWork], DriftService],
    on_window_closed: Callable[[], None] = lambda: None,
) -> Mapping[str, EventHandler]:
    """The drift service's handlers by event type."""

    async def on_version_registered(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ModelVersionRegistered)
        await service_of(uow).record_version(data)

    async def on_samples(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.DriftSamples)
        rows = [SampleRow(dict(s.features), s.prediction, s.label) for s in data.samples]
        try:
            intake = await service_of(uow).add_samples(
                data.team, data.model, data.version, data.environment, rows
            )
        except MlplaneError as exc:
            if not exc.retryable:
                reason = exc.problem_type.rsplit("/", 1)[-1]
                metrics.REFUSED.labels(service_name, "bus", reason).inc()
            raise
        metrics.SAMPLES.labels(service_name, "bus").inc(intake.accepted)
        if intake.closed:
            uow.after_commit(on_window_closed)

    return {ev.MODEL_VERSION_REGISTERED: on_version_registered, ev.DRIFT_SAMPLES: on_samples}
