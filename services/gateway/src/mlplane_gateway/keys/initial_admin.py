"""A way in on the first start: the initial admin API key, written to a file.

A newcomer's `make run` has no keys and no bootstrap key, and the services only
answer calls the gateway signed for. So on the first start in a database (no API
key was ever made, revoked ones included) and with no
`MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY`, the gateway makes one key with every scope
and writes it to `<data dir>/gateway/initial-admin-key`, readable by its owner
only. The key is never logged, and never made or shown again: a later start
finds a key in the table (even once this one is revoked, even with the file gone).

The key belongs to a team (`INITIAL_ADMIN_TEAM`): stored keys are always some
team's, only the bootstrap key from settings acts for every team. With it one
creates that team's keys, or sets the bootstrap key to manage other teams.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_gateway.keys.service import ApiKeyService
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.tables import GatewayTables

INITIAL_ADMIN_KEY_FILE: Final = "initial-admin-key"
INITIAL_ADMIN_TEAM: Final = "default"
"""The team services take a caller without one to be (the registry's default)."""

_log = logging.getLogger("mlplane.gateway")


async def on_start(
    settings: GatewaySettings, uow_factory: UnitOfWorkFactory, tables: GatewayTables, data_dir: Path
) -> None:
    """What a hosted start does before serving: warn about the built-in development
    secret key, and make the initial admin key on the very first start (with no
    bootstrap key, unless turned off). Raises what the database or writing the key's
    file raises."""
    if settings.uses_dev_secret_key:
        warn_dev_secret_key()
    if settings.initial_admin_key and settings.bootstrap_admin_key is None:
        await ensure_initial_admin_key(uow_factory, tables, settings.pepper(), data_dir)


def warn_dev_secret_key() -> None:
    """One warning line: API keys and webhook secrets hang on a key anyone can read."""
    _log.warning(
        "MLPLANE_GATEWAY_SECRET_KEY is not set: using the built-in development secret key,"
        " which is public; API keys and webhook secrets made now are only fit for"
        " development (set a secret key of your own; changing it invalidates them)",
        extra={"secret_key": "built-in development key"},
    )


async def ensure_initial_admin_key(
    uow_factory: UnitOfWorkFactory, tables: GatewayTables, pepper: bytes, data_dir: Path
) -> Path | None:
    """Make the initial admin key and write it to `data_dir`/initial-admin-key (mode
    0600) when no API key was ever made; the file's path, or None when nothing was
    made. Raises OSError when the file cannot be written (nothing is then stored).
    """
    path = data_dir / INITIAL_ADMIN_KEY_FILE
    async with uow_factory() as uow:
        made = await ApiKeyService(uow, tables, pepper).create_initial_admin_key(
            INITIAL_ADMIN_TEAM, datetime.now(UTC)
        )
        if made is None:
            return None
        key, plaintext = made
        _write_owner_only(path, plaintext)
        try:
            await uow.commit()
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
    _log.warning(
        "no API keys yet: made an initial admin key (team %s, every scope), written to %s;"
        " create your own keys with it, then revoke it and delete the file",
        INITIAL_ADMIN_TEAM,
        path,
        extra={"key_id": key.id, "path": str(path)},
    )
    return path


def _write_owner_only(path: Path, secret: str) -> None:
    """Writes `secret` to a new file only its owner may read (an old file is replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
