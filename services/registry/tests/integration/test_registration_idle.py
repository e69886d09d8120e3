"""An idle registration worker sleeps its poll interval: no job waiting is not one due now."""

from __future__ import annotations

from mlplane_registry.store import RegistryTables
from mlplane_registry.store.registrations import RegistrationStore
from mlplane_runtime.uow import UnitOfWorkFactory


async def test_no_job_waiting_has_no_due_time(
    uow_factory: UnitOfWorkFactory, tables: RegistryTables
) -> None:
    async with uow_factory() as uow:
        # It was 0 ("due now"): GREATEST skipped the NULL of an empty MIN, and every
        # worker polled the database 20 times a second while nothing was waiting.
        assert await RegistrationStore(uow.session, tables).next_due_in() is None
