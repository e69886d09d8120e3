"""Saying so when scans queue: the scanner is the platform's usual bottleneck.

Each scan is a Trivy process pinned to a slot (`max_concurrent_scans`); once images
arrive faster than the slots clear them, scans wait, and the whole flow from upload
to deployment slows with no error anywhere. Every claimed scan's wait goes to a
histogram; a wait past `warn_after_s` also logs one warning, at most once a minute,
naming the setting to raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from mlplane_scanner.metrics import SCAN_QUEUE_WAIT

_log = logging.getLogger("mlplane.scanner")

WARN_EVERY_S = 60.0


@dataclass
class BacklogNotice:
    """Observes how long each claimed scan waited; warns when scans queue."""

    service: str
    slots: int
    warn_after_s: float
    monotonic: Callable[[], float]
    _last_warning: float | None = field(default=None, init=False)

    def claimed(self, requested_at: datetime, now: datetime, *, first_attempt: bool) -> bool:
        """Record a claim; True when it logged the warning. Retries are not queueing."""
        if not first_attempt:
            return False
        waited_s = max(0.0, (now - requested_at).total_seconds())
        SCAN_QUEUE_WAIT.labels(self.service).observe(waited_s)
        if waited_s < self.warn_after_s:
            return False
        moment = self.monotonic()
        if self._last_warning is not None and moment - self._last_warning < WARN_EVERY_S:
            return False
        self._last_warning = moment
        _log.warning(
            "scans are queueing: this one waited %.0f s for one of %d scan slots; the "
            "scanner is the bottleneck (raise MLPLANE_SCANNER_MAX_CONCURRENT_SCANS where "
            "cores allow, or run more scanner replicas)",
            waited_s,
            self.slots,
            extra={"queue_wait_s": round(waited_s, 3), "scan_slots": self.slots},
        )
        return True
