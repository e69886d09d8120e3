"""Fixtures of the security tests: the platform in dev and in production settings, once
per session each, and the two teams' keys and objects on it (see `stack`, `world`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlplane_testing.database import DEFAULT_TEST_DATABASE_URL

from .stack import Mode, running_stack
from .world import World, build_world, team_names

S3_URL = os.environ.get("MLPLANE_TEST_S3_URL", "http://127.0.0.1:8333")
MODES: tuple[Mode, ...] = ("dev", "prod")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out (deselected, never counted as passed or skipped) the cases a mode does
    not have: a test marked `modes(...)` runs only in those, and a module's
    `serves(mode, params)` says which of its parametrized cases a mode serves."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("world") if callspec is not None else None
        if mode is None:
            kept.append(item)
            continue
        marker = item.get_closest_marker("modes")
        serves = getattr(getattr(item, "module", None), "serves", None)
        if (marker is not None and mode not in marker.args) or (
            serves is not None and not serves(mode, callspec.params)
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=MODES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The platform in `dev` or `prod` settings with team A's and team B's objects."""
    mode: Mode = request.param
    database_url = os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    data_dir: Path = tmp_path_factory.mktemp(f"security-{mode}")
    suffix = uuid.uuid4().hex[:6]
    # The teams' versions may point under s3://models/ (the registry refuses anything
    # else that was not uploaded through it).
    locations = {team: ["s3://models/"] for team in team_names(suffix)}
    with running_stack(
        mode, database_url, data_dir, team_locations=locations, s3_url=S3_URL
    ) as stack:
        yield build_world(stack, suffix)
