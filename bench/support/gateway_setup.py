"""The gateway benchmark's two servers and what it calls them with.

The registry runs alone (`mlplane serve registry`); the gateway runs alone
(`mlplane serve gateway`) with its facade's registry URL pointed at the
registry's, so every call through it makes the real extra hop over loopback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench.support.identity import BENCH_IDENTITY_SECRET, identity_environment
from bench.support.registry_clients import TEAM, MlplaneRegistry
from bench.support.registry_servers import ServerProcess

BIN = Path(sys.executable).parent
BOOTSTRAP_KEY = "bench-gateway-bootstrap-key-0123456789abcdef"
SECRET_KEY = "bench-gateway-secret-key-0123456789abcdefgh"
NO_THROTTLE = 1_000_000
"""Rate per second and burst of every bucket: far above what the bench sends, so the
limiter runs on every request (its cost is measured) but never refuses one."""


def _base_env() -> dict[str, str]:
    # The caller's MLPLANE_* settings would leak into both servers.
    return {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}


def _common(database_url: str, port: int, data_dir: Path) -> dict[str, str]:
    return {
        "MLPLANE_DATABASE_URL": database_url,
        "MLPLANE_HTTP_PORT": str(port),
        "MLPLANE_DATA_DIR": str(data_dir),
        "MLPLANE_LOG_LEVEL": "WARNING",
    }


def registry_server(database_url: str, port: int, workdir: Path) -> ServerProcess:
    """`mlplane serve registry`, verifying identities signed with the benchmark's secret
    (the gateway's, and the direct side's `SignedIdentity`)."""
    return ServerProcess(
        "registry",
        [str(BIN / "mlplane"), "serve", "registry"],
        env={
            **_base_env(),
            **_common(database_url, port, workdir / "registry-data"),
            **identity_environment(TEAM),
        },
        cwd=workdir,
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


REDIS_URL = os.environ.get("MLPLANE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
"""The gateway's rate limits live here, as deployed (a database of its own: the bench
flushes nothing, and its keys expire on their own)."""


def gateway_server(database_url: str, port: int, workdir: Path, registry_url: str) -> ServerProcess:
    """`mlplane serve gateway`: facade to `registry_url`, rate limits in Redis set high."""
    settings: Mapping[str, str] = {
        "MLPLANE_GATEWAY_REDIS_URL": REDIS_URL,
        "MLPLANE_GATEWAY_SECRET_KEY": SECRET_KEY,
        "MLPLANE_IDENTITY_SECRET": BENCH_IDENTITY_SECRET,
        "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
        "MLPLANE_GATEWAY_REGISTRY_URL": registry_url,
        "MLPLANE_GATEWAY_KEY_RATE_PER_S": str(NO_THROTTLE),
        "MLPLANE_GATEWAY_KEY_BURST": str(NO_THROTTLE),
        "MLPLANE_GATEWAY_TEAM_RATE_PER_S": str(NO_THROTTLE),
        "MLPLANE_GATEWAY_TEAM_BURST": str(NO_THROTTLE),
    }
    return ServerProcess(
        "gateway",
        [str(BIN / "mlplane"), "serve", "gateway"],
        env={
            **_base_env(),
            **_common(database_url, port, workdir / "gateway-data"),
            **settings,
        },
        cwd=workdir,
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


async def create_api_key(gateway_url: str) -> str:
    """A key of the benchmark's team holding `models:read`, made with the bootstrap key."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        answer = await client.post(
            "/v1/keys",
            json={"team": TEAM, "name": "bench", "scopes": ["models:read"]},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        answer.raise_for_status()
        key: str = answer.json()["key"]
        return key


class GatewayRegistry(MlplaneRegistry):
    """The registry's API through the gateway's facade (`/v1/registry/...`), with a key."""

    name = "gateway"

    def __init__(self, gateway_url: str, key: str) -> None:
        super().__init__(gateway_url.rstrip("/") + "/v1")
        self.headers = {"Authorization": f"Bearer {key}"}
