"""Fixtures of the OCI client's tests: the real registry (shared) and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mlplane_oci import OciClient, RetryPolicy
from mlplane_testing.oci_registry import (
    OciRegistryEndpoint,
    oci_registry,  # noqa: F401 (a fixture: the real registry)
    unique_repository,
)

# Retries in milliseconds, so tests of failure paths stay fast.
FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
async def client(oci_registry: OciRegistryEndpoint) -> AsyncIterator[OciClient]:  # noqa: F811
    async with OciClient(oci_registry.url, retry=FAST_RETRY) as oci:
        yield oci


@pytest.fixture
def repository() -> str:
    return unique_repository()
