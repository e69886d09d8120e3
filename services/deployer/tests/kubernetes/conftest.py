"""Tests against a real cluster with Argo CD: run only when `KUBECONFIG` is set.

Without it they are collected and then deselected, with the reason printed in the
run's summary: never reported as passed, never silently skipped.
"""

from __future__ import annotations

import os

import pytest

MARKER = "kubernetes_cluster"
_deselected: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: needs a real cluster with Argo CD (KUBECONFIG set); else deselected"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("KUBECONFIG"):
        return
    cluster = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if not cluster:
        return
    _deselected.extend(item.nodeid for item in cluster)
    config.hook.pytest_deselected(items=cluster)
    items[:] = [item for item in items if item.get_closest_marker(MARKER) is None]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_sep(
            "-", f"{len(_deselected)} real-cluster tests NOT RUN: KUBECONFIG is not set"
        )
        for nodeid in _deselected:
            terminalreporter.write_line(f"not run (no KUBECONFIG): {nodeid}")
