"""The periodic watch: a new vulnerability database rescans deployed images; verdicts of
deployed images are evaluated again (an exception that expired stops applying).

Each round asks the Trivy adapter to refresh its database from `db_repository`
(it downloads only when the cached one is due, or none is cached) and compares
the database build with the last one recorded in the scanner's schema, so
replicas and restarts agree on what was seen. Only changed verdicts are emitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_scanner.service import ScannerService
from mlplane_scanner.trivy import TrivyError, TrivyRunner

_log = logging.getLogger("mlplane.scanner")


class RescanWatch:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        service_of: Callable[[UnitOfWork], ScannerService],
        runner: TrivyRunner,
        *,
        interval_s: float,
        wake_worker: Callable[[], None],
    ) -> None:
        self._uow_factory = uow_factory
        self._service_of = service_of
        self._runner = runner
        self._interval_s = interval_s
        self._wake_worker = wake_worker

    async def run(self) -> None:
        """Run rounds every `interval_s` until cancelled; a failed round is logged."""
        while True:
            try:
                await self.round()
            except Exception:
                _log.exception("the scanner's rescan round failed; trying again next round")
            await asyncio.sleep(self._interval_s)

    async def round(self) -> int:
        """One round; returns how many deployed images were queued for a rescan."""
        queued = await self.check_database()
        await self.reevaluate_deployed()
        return queued

    async def check_database(self) -> int:
        try:
            db = await self._runner.refresh_db()
        except TrivyError as error:
            _log.warning("vulnerability database not refreshed: %s", error.detail)
            db = await self._runner.db_version()
        if db is None:
            return 0
        async with self._uow_factory() as uow:
            service = self._service_of(uow)
            queued = (
                await service.rescan_deployed() if await service.note_db_version(db.label) else 0
            )
            await uow.commit()
        if queued:
            _log.info("vulnerability database %s: %d deployed image(s) to rescan", db.label, queued)
            self._wake_worker()
        return queued

    async def reevaluate_deployed(self) -> None:
        async with self._uow_factory() as uow:
            ids = await self._service_of(uow).deployed_scan_ids()
        for scan_id in ids:
            async with self._uow_factory() as uow:
                await self._service_of(uow).reevaluate(scan_id)
                await uow.commit()
