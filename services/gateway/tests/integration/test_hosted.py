"""The gateway hosted by the platform: migrated into its schema, routes at the root."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from mlplane_gateway.main import make_plugin
from mlplane_runtime.db import Database
from mlplane_runtime.platform import Platform
from mlplane_runtime.settings import RuntimeSettings

from ..conftest import BOOTSTRAP_KEY, SECRET_KEY


async def test_the_platform_serves_the_gateway_at_v1(
    database_url: str,
    gateway_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suffix = uuid4().hex[:8]
    monkeypatch.setenv("MLPLANE_GATEWAY_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY", BOOTSTRAP_KEY)
    monkeypatch.delenv("MLPLANE_REDIS_URL", raising=False)
    schema, bus = f"t_gw_{suffix}", f"t_bus_{suffix}"
    platform = Platform(
        RuntimeSettings(database_url=database_url, data_dir=tmp_path),
        [make_plugin(name=f"gateway-{suffix}", schema=schema)],
        bus_schema=bus,
    )
    try:
        await platform.start()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform.app), base_url="http://mlplane.test"
        ) as client:
            anonymous = await client.get("/v1/keys")
            admitted = await client.get(
                "/v1/keys", headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
            )
        assert anonymous.status_code == 401
        assert admitted.status_code == 200
        assert admitted.json() == {"keys": []}
    finally:
        await platform.stop()
        await gateway_database.drop_schema(schema)
        await gateway_database.drop_schema(bus)
