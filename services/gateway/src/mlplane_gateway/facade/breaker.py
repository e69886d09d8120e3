"""A circuit breaker per upstream service: stop calling a service that keeps failing.

Closed: calls go through; `failure_threshold` consecutive failures open it.
Open: calls fail fast until `cool_down_s` has passed since it opened.
Half-open: one trial call goes through (others still fail fast); its success
closes the breaker, its failure opens it again for another cool-down.

Pure: the clock is passed in, nothing here waits or does I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """The breaker of one upstream. Call `admit()` before a call and report its outcome.

    Every admitted call must end in exactly one of `record_success`,
    `record_failure` or `release` (the call ended with no verdict on the service,
    e.g. the caller went away), or a half-open breaker stays waiting for its trial.
    """

    failure_threshold: int = 5
    cool_down_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _trial_in_flight: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and cool_down_s > 0")

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has passed reads half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def admit(self) -> bool:
        """True when a call may go to the service now; False: fail fast."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._state = BreakerState.HALF_OPEN
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def retry_after_s(self) -> int:
        """Whole seconds a refused caller should wait (at least 1), for `Retry-After`."""
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self.cool_down_s - self.clock()
            return max(1, math.ceil(remaining))
        # Half-open with the trial in flight: its answer comes within one call's time.
        return 1

    def record_success(self) -> None:
        """The service answered (any status that does not say it is unwell)."""
        self._failures = 0
        self._trial_in_flight = False
        self._state = BreakerState.CLOSED

    def record_failure(self) -> None:
        """The service failed the call (connection error, timeout, 5xx)."""
        self._trial_in_flight = False
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()

    def release(self) -> None:
        """An admitted call ended without telling anything about the service."""
        self._trial_in_flight = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self.clock()
        self._failures = 0

    def _cooled_down(self) -> bool:
        return self.clock() - self._opened_at >= self.cool_down_s
