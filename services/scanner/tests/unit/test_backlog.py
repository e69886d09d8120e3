"""Queued scans are measured, and a long wait says the scanner is the bottleneck."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from mlplane_scanner.backlog import BacklogNotice
from prometheus_client import REGISTRY

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count(service: str) -> float:
    value = REGISTRY.get_sample_value(
        "mlplane_scanner_queue_wait_seconds_count", {"service": service}
    )
    return value or 0.0


def test_a_long_wait_warns_once_a_minute_naming_the_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    notice = BacklogNotice("scanner-backlog-a", slots=2, warn_after_s=30, monotonic=clock)
    caplog.set_level(logging.WARNING, logger="mlplane.scanner")

    assert not notice.claimed(NOW - timedelta(seconds=5), NOW, first_attempt=True)
    assert notice.claimed(NOW - timedelta(seconds=90), NOW, first_attempt=True)
    clock.now += 30
    assert not notice.claimed(NOW - timedelta(seconds=95), NOW, first_attempt=True)
    clock.now += 31
    assert notice.claimed(NOW - timedelta(seconds=100), NOW, first_attempt=True)

    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "waited 90 s for one of 2 scan slots" in warnings[0]
    assert "MLPLANE_SCANNER_MAX_CONCURRENT_SCANS" in warnings[0]
    assert _count("scanner-backlog-a") == 4


def test_a_retried_scan_is_not_counted_as_queueing() -> None:
    notice = BacklogNotice("scanner-backlog-b", slots=2, warn_after_s=1, monotonic=Clock())
    assert not notice.claimed(NOW - timedelta(hours=1), NOW, first_attempt=False)
    assert _count("scanner-backlog-b") == 0
