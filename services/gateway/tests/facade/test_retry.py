"""Which requests are retried, and the backoff between tries."""

from __future__ import annotations

import pytest
from mlplane_gateway.facade.retry import RetryPolicy, is_retryable_request, is_retryable_status


class TestIsRetryableRequest:
    @pytest.mark.parametrize(
        ("method", "headers", "expected"),
        [
            ("GET", {}, True),
            ("head", {}, True),
            ("POST", {}, False),
            ("PUT", {}, False),
            ("DELETE", {}, False),
            ("PATCH", {}, False),
            ("POST", {"idempotency-key": "k"}, True),
            ("PUT", {"idempotency-key": ""}, False),
        ],
    )
    def test_only_reads_and_keyed_requests(
        self, method: str, headers: dict[str, str], expected: bool
    ) -> None:
        assert is_retryable_request(method, headers) is expected

    @pytest.mark.parametrize(("status", "expected"), [(502, True), (503, True), (504, True)])
    def test_gateway_statuses_are_retried(self, status: int, expected: bool) -> None:
        assert is_retryable_status(status) is expected

    @pytest.mark.parametrize("status", [200, 400, 404, 409, 429, 500, 501])
    def test_other_statuses_are_not(self, status: int) -> None:
        assert not is_retryable_status(status)


class TestRetryPolicy:
    def test_delays_grow_and_are_capped(self) -> None:
        policy = RetryPolicy(
            attempts=6, base_delay_s=0.1, max_delay_s=0.5, random_fraction=lambda: 1
        )
        assert [policy.delay_s(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])

    def test_jitter_draws_below_the_bound(self) -> None:
        policy = RetryPolicy(base_delay_s=0.4, max_delay_s=1, random_fraction=lambda: 0.25)
        assert policy.delay_s(2) == pytest.approx(0.2)

    def test_attempts_bound_the_tries(self) -> None:
        policy = RetryPolicy(attempts=3)
        assert [policy.allows_another(n) for n in (1, 2, 3)] == [True, True, False]
        assert not RetryPolicy(attempts=1).allows_another(1)

    def test_nonsense_settings_are_refused(self) -> None:
        with pytest.raises(ValueError, match="attempts"):
            RetryPolicy(attempts=0)
        with pytest.raises(ValueError, match="attempts"):
            RetryPolicy(base_delay_s=2, max_delay_s=1)
