"""Shared fixtures of the runtime's tests: the real PostgreSQL and RabbitMQ on this machine.

Other engineers run tests against the same servers at the same time, so every test
works in its own freshly created schema (`schema`) and drops it afterwards.
"""

from __future__ import annotations

import os

import pytest
from mlplane_testing.database import (  # noqa: F401 (fixtures: the real PostgreSQL)
    database,
    database_url,
    schema,
)

DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The test RabbitMQ URL (env MLPLANE_TEST_AMQP_URL)."""
    return os.environ.get("MLPLANE_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
