"""A circuit breaker per upstream service: stop calling a service that keeps failing.

Closed: calls go through; `failure_threshold` consecutive failures open it.
Open: calls fail fast until the cool-down has passed since it opened.
Half-open: one trial call goes through (others still fail fast); its success
closes the breaker, its failure opens it again for another cool-down.

The cool-down starts short (`first_cool_down_s`) and doubles with each failed
trial up to `cool_down_s`: a service back after a blip is probed within a second
or two, a service that stays down is not probed more than once per `cool_down_s`.

Only outcomes of calls admitted since the breaker last opened count: a slow call
admitted before it opened and failing long after (a timeout) says nothing about
the service now, and must not re-open a breaker whose trial is under way or
has just succeeded.

Pure: the clock is passed in, nothing here waits or does I/O; a state change is
reported to `on_change` (the facade logs it).
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


@dataclass(frozen=True, slots=True)
class Permit:
    """One admitted call: hand it back with its outcome (always true)."""

    epoch: int
    trial: bool

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """What `on_change` is told: the breaker went from `before` to `after`."""

    before: BreakerState
    after: BreakerState
    cool_down_s: float
    """The cool-down now under way (when it opened)."""
    open_for_s: float
    """How long it had been open or half-open (when it closed)."""


@dataclass
class CircuitBreaker:
    """The breaker of one upstream. Call `admit()` before a call and report its outcome.

    Every admitted call must end in exactly one of `record_success`,
    `record_failure` or `release` (the call ended with no verdict on the service,
    e.g. the caller went away), or a half-open breaker stays waiting for its trial.
    Passing the `Permit` that `admit()` gave lets stale outcomes be ignored.
    """

    failure_threshold: int = 5
    cool_down_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    first_cool_down_s: float | None = None
    """The first cool-down after closing (None: `cool_down_s` every time)."""
    on_change: Callable[[BreakerChange], None] | None = None
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _first_opened_at: float = field(default=0.0, init=False)
    _current_cool_down_s: float = field(default=0.0, init=False)
    _epoch: int = field(default=0, init=False)
    _trial_in_flight: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and cool_down_s > 0")
        if self.first_cool_down_s is not None and self.first_cool_down_s <= 0:
            raise ValueError("first_cool_down_s must be > 0")

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has passed reads half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def admit(self) -> Permit | None:
        """A permit when a call may go to the service now; None: fail fast."""
        if self._state is BreakerState.CLOSED:
            return Permit(self._epoch, trial=False)
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return None
            self._state = BreakerState.HALF_OPEN
        if self._trial_in_flight:
            return None
        self._trial_in_flight = True
        return Permit(self._epoch, trial=True)

    def retry_after_s(self) -> int:
        """Whole seconds a refused caller should wait (at least 1), for `Retry-After`."""
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self._current_cool_down_s - self.clock()
            return max(1, math.ceil(remaining))
        # Half-open with the trial in flight: its answer comes within one call's time.
        return 1

    def record_success(self, permit: Permit | None = None) -> None:
        """The service answered (any status that does not say it is unwell)."""
        if self._stale(permit):
            return
        self._failures = 0
        self._trial_in_flight = False
        if self._state is not BreakerState.CLOSED:
            before, self._state = self._state, BreakerState.CLOSED
            self._tell(before, open_for_s=self.clock() - self._first_opened_at)

    def record_failure(self, permit: Permit | None = None) -> None:
        """The service failed the call (connection failure, timeout, 502/503/504)."""
        if self._stale(permit):
            return
        self._trial_in_flight = False
        if self._state is BreakerState.HALF_OPEN:
            self._open(min(self.cool_down_s, self._current_cool_down_s * 2))
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._first_opened_at = self.clock()
            self._open(self.first_cool_down_s or self.cool_down_s)

    def release(self, permit: Permit | None = None) -> None:
        """An admitted call ended without telling anything about the service."""
        if permit is None or (permit.trial and permit.epoch == self._epoch):
            self._trial_in_flight = False

    def _stale(self, permit: Permit | None) -> bool:
        """True for the outcome of a call admitted before the breaker last opened, or of
        a call other than the trial while half-open: it says nothing about the service now."""
        if permit is None:
            return False
        if permit.epoch != self._epoch:
            return True
        return self._state is not BreakerState.CLOSED and not permit.trial

    def _open(self, cool_down_s: float) -> None:
        before = self._state
        self._state = BreakerState.OPEN
        self._opened_at = self.clock()
        self._current_cool_down_s = min(cool_down_s, self.cool_down_s)
        self._failures = 0
        self._epoch += 1
        if before is BreakerState.CLOSED:
            self._tell(before)

    def _tell(self, before: BreakerState, *, open_for_s: float = 0.0) -> None:
        if self.on_change is not None:
            self.on_change(
                BreakerChange(before, self._state, self._current_cool_down_s, open_for_s)
            )

    def _cooled_down(self) -> bool:
        return self.clock() - self._opened_at >= self._current_cool_down_s
