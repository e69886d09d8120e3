"""Suite-wide ordering: tests that disrupt shared infrastructure run last.

A `disruptive` test (it drops every broker connection, say) would break tests that
run beside it, so one pytest session runs it after everything else.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
