"""The first start: an initial admin key written to the data directory, and a warning
when the built-in development secret key is in use."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlplane_gateway.keys.initial_admin import INITIAL_ADMIN_KEY_FILE, INITIAL_ADMIN_TEAM
from mlplane_gateway.settings import DEV_SECRET_KEY

from ..conftest import Harness


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


async def test_the_first_start_writes_an_admin_key_only_its_owner_can_read(
    harness_for: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness: Harness = await harness_for(bootstrap_admin_key=None)
    await harness.prepare(tmp_path)

    path = tmp_path / INITIAL_ADMIN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    listed = await harness.client.get("/v1/keys", headers=harness.bearer(key))
    assert listed.status_code == 200, listed.text
    assert [k["team"] for k in listed.json()["keys"]] == [INITIAL_ADMIN_TEAM]
    made = await harness.client.post(
        "/v1/keys",
        json={"team": INITIAL_ADMIN_TEAM, "name": "mine", "scopes": ["admin", "models:write"]},
        headers=harness.bearer(key),
    )
    assert made.status_code == 201, made.text
    assert key not in logged(caplog)
    assert str(path) in logged(caplog)


async def test_a_later_start_changes_nothing_even_with_the_file_gone_or_the_key_revoked(
    harness_for: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    harness: Harness = await harness_for(bootstrap_admin_key=None)
    await harness.prepare(tmp_path)
    path = tmp_path / INITIAL_ADMIN_KEY_FILE
    key = path.read_text()

    await harness.prepare(tmp_path)  # the second start
    assert path.read_text() == key

    listed = await harness.client.get("/v1/keys", headers=harness.bearer(key.strip()))
    key_id = listed.json()["keys"][0]["id"]
    revoked = await harness.client.delete(f"/v1/keys/{key_id}", headers=harness.bearer(key.strip()))
    assert revoked.status_code == 204
    path.unlink()
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    await harness.prepare(tmp_path)
    assert not path.exists()
    assert INITIAL_ADMIN_KEY_FILE not in logged(caplog)


async def test_no_initial_key_is_made_when_a_bootstrap_key_is_set(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.prepare(tmp_path)
    assert not (tmp_path / INITIAL_ADMIN_KEY_FILE).exists()


async def test_the_built_in_development_secret_key_is_warned_about_once(
    harness_for: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness: Harness = await harness_for(env="dev", secret_key=None)
    await harness.prepare(tmp_path)
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "development secret key" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert DEV_SECRET_KEY not in logged(caplog)


async def test_a_real_secret_key_brings_no_warning(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.prepare(tmp_path)
    assert "development secret key" not in logged(caplog)
