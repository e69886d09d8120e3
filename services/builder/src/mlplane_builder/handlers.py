"""The builder's event consumer: record a pending build, wake the worker once committed.

It runs inside the consumer's unit of work, so the inbox row and the build record
commit together: a redelivered event (or the same version announced twice) records
nothing new. The build itself never runs here, so the transaction stays short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.uow import UnitOfWork

from mlplane_builder.service import BuilderService, request_from_event
from mlplane_builder.store import BuilderTables


def event_handlers(
    tables: BuilderTables, wake: Callable[[], None] = lambda: None
) -> Mapping[str, EventHandler]:
    """The builder's handlers on `tables`; `wake` tells idle build workers to look."""

    async def on_version_registered(event: CloudEvent, uow: UnitOfWork) -> None:
        data = event.data
        assert isinstance(data, ev.ModelVersionRegistered)
        build = await BuilderService(uow, tables).request_build(request_from_event(data))
        if build is not None:
            uow.after_commit(wake)

    return {ev.MODEL_VERSION_REGISTERED: on_version_registered}
