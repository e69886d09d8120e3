"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

import pytest
from mlplane_gateway.facade.breaker import BreakerChange, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cool_down_s=10, clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.admit()
        breaker.record_failure()


class TestCircuitBreaker:
    def test_it_opens_after_n_consecutive_failures(self, breaker: CircuitBreaker) -> None:
        fail(breaker, 2)
        assert breaker.state is BreakerState.CLOSED
        fail(breaker, 1)
        assert breaker.state is BreakerState.OPEN
        assert not breaker.admit()

    def test_a_success_resets_the_count(self, breaker: CircuitBreaker) -> None:
        fail(breaker, 2)
        assert breaker.admit()
        breaker.record_success()
        fail(breaker, 2)
        assert breaker.state is BreakerState.CLOSED

    def test_retry_after_counts_down_the_cool_down(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        fail(breaker, 3)
        assert breaker.retry_after_s() == 10
        clock.now += 7.5
        assert breaker.retry_after_s() == 3
        clock.now += 2.4
        assert breaker.retry_after_s() == 1

    def test_after_the_cool_down_one_trial_goes_through(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        fail(breaker, 3)
        clock.now += 10
        assert breaker.state is BreakerState.HALF_OPEN
        assert breaker.admit()
        assert not breaker.admit()  # only one trial at a time
        assert breaker.retry_after_s() == 1
        breaker.record_success()
        assert breaker.state is BreakerState.CLOSED
        assert breaker.admit()

    def test_a_failed_trial_opens_it_for_another_cool_down(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        fail(breaker, 3)
        clock.now += 10
        assert breaker.admit()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        assert breaker.retry_after_s() == 10
        clock.now += 9.9
        assert not breaker.admit()

    def test_a_released_trial_lets_the_next_call_try(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        fail(breaker, 3)
        clock.now += 10
        assert breaker.admit()
        breaker.release()
        assert breaker.admit()

    @pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, 0.0)])
    def test_nonsense_settings_are_refused(self, threshold: int, cool_down: float) -> None:
        with pytest.raises(ValueError, match="failure_threshold"):
            CircuitBreaker(threshold, cool_down)


class TestStaleOutcomes:
    def test_a_call_admitted_before_it_opened_cannot_reopen_it_during_the_trial(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        slow = breaker.admit()
        assert slow
        fail(breaker, 3)
        clock.now += 10
        trial = breaker.admit()
        assert trial
        breaker.record_failure(slow)  # the slow call timed out long after
        assert breaker.state is BreakerState.HALF_OPEN
        breaker.record_success(trial)
        assert breaker.state is BreakerState.CLOSED

    def test_a_late_failure_cannot_reopen_it_right_after_the_trial_closed_it(
        self, breaker: CircuitBreaker, clock: Clock
    ) -> None:
        slow = breaker.admit()
        assert slow
        fail(breaker, 3)
        clock.now += 10
        trial = breaker.admit()
        assert trial
        breaker.record_success(trial)
        breaker.record_failure(slow)
        assert breaker.state is BreakerState.CLOSED


class TestCoolDown:
    def test_the_first_cool_down_is_short_and_doubles_with_each_failed_trial(
        self, clock: Clock
    ) -> None:
        breaker = CircuitBreaker(3, cool_down_s=10, first_cool_down_s=2, clock=clock)
        fail(breaker, 3)
        assert breaker.retry_after_s() == 2
        for expected in (4, 8, 10, 10):
            clock.now += breaker.retry_after_s()
            trial = breaker.admit()
            assert trial
            breaker.record_failure(trial)
            assert breaker.retry_after_s() == expected
        clock.now += 10
        trial = breaker.admit()
        assert trial
        breaker.record_success(trial)
        fail(breaker, 3)
        assert breaker.retry_after_s() == 2  # closed in between: short again


class TestStateChanges:
    def test_opening_and_closing_are_told_once_each(self, clock: Clock) -> None:
        changes: list[BreakerChange] = []
        breaker = CircuitBreaker(
            2, cool_down_s=10, first_cool_down_s=1, clock=clock, on_change=changes.append
        )
        fail(breaker, 2)
        clock.now += 1
        fail(breaker, 1)  # the trial fails: open again, not told again
        clock.now += 2
        trial = breaker.admit()
        assert trial
        breaker.record_success(trial)
        breaker.record_success(breaker.admit())
        assert [(c.before, c.after) for c in changes] == [
            (BreakerState.CLOSED, BreakerState.OPEN),
            (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        ]
        assert changes[0].cool_down_s == 1
        assert changes[1].open_for_s == 3
