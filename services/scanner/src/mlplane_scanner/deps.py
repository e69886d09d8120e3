"""What the scanner's routes take from one hosting, as one typed dependency alias.

`main.build` makes a `HostedScanner` per hosting; the host binds it to each request
of the scanner's routes, and a route takes it as `scanner: Scanner`. The unit of
work, team and principal come from `mlplane_runtime.deps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from mlplane_runtime.deps import resources
from mlplane_runtime.uow import UnitOfWork

from mlplane_scanner.reports import ReportStore
from mlplane_scanner.rescan import RescanWatch
from mlplane_scanner.service import ScannerService
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import ScannerTables
from mlplane_scanner.trivy import TrivyRunner
from mlplane_scanner.worker import ScanWorker


@dataclass(frozen=True, slots=True)
class HostedScanner:
    """One hosted scanner: its tables (in its schema), settings, Trivy runner, report
    store, scan worker and rescan watch.

    `service(uow)` gives the scanner's use cases on `uow`, with the verdict
    environment and clock of this hosting (the worker and the watch use the same).
    """

    tables: ScannerTables
    settings: ScannerSettings
    service: Callable[[UnitOfWork], ScannerService]
    runner: TrivyRunner
    reports: ReportStore
    worker: ScanWorker
    watch: RescanWatch


Scanner = Annotated[HostedScanner, Depends(resources(HostedScanner))]
