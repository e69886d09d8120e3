"""Suite-wide ordering: tests that disrupt shared infrastructure run last.

A `disruptive` test (it drops every broker connection, say) would break tests that
run beside it, so one pytest session runs it after everything else.
"""

from __future__ import annotations

import os

import pytest
from mlplane_testing.identity import TEST_IDENTITY_SECRET


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


# No service trusts a header: every service built in a test verifies the gateway's
# identity tokens with keys derived from this secret (mlplane_testing.identity).
os.environ.setdefault("MLPLANE_IDENTITY_SECRET", TEST_IDENTITY_SECRET)
