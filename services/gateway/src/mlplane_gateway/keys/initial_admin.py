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

from mlplane_gateway.service import GatewayService
from mlplane_gateway.store import GatewayTables

INITIAL_ADMIN_KEY_FILE: Final = "initial-admin-key"
INITIAL_ADMIN_TEAM: Final = "default"
"""The team services take a caller without one to be (the registry's default)."""

_log = logging.getLogger("mlplane.gateway")


async def ensure_initial_admin_key(
    uow_factory: UnitOfWorkFactory, tables: GatewayTables, pepper: bytes, data_dir: Path
) -> Path | None:
    """Make the initial admin key and write it to `data_dir`/initial-admin-key (mode
    0600) when no API key was ever made; the file's path, or None when nothing was
    made. Raises OSError when the file cannot be written (nothing is then stored).
    """
    path = data_dir / INITIAL_ADMIN_KEY_FILE
    async with uow_factory() as uow:
        made = await GatewayService(uow, tables, pepper).create_initial_admin_key(
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
