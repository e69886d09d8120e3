"""Fixtures of the contract tests: the producer -> consumer record, gathered once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mlplane_testing.database import database_url_from_env

from .observed import Observed, observe


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """Every installed service hosted, its producers driven, the bus settled: the record.

    Run on a loop of its own (the platform is stopped before this returns), so the
    record is plain data whatever loop the tests that read it run on.
    """
    data_dir: Path = tmp_path_factory.mktemp("contract-platform")
    return asyncio.run(observe(database_url_from_env(), data_dir))
