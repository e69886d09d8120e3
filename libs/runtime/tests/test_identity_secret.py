"""Where a platform's identity secret comes from: made once in dev, required elsewhere.

No mode trusts a header, so every service the gateway fronts needs a key before it
starts: `make run` makes a secret on its first start (owner-only file), a production
service without one refuses to start, naming what to set.
"""

from __future__ import annotations

import stat
from pathlib import Path
from uuid import uuid4

import pytest
from mlplane_runtime.db import Database
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.identity_secret import (
    IDENTITY_SECRET_FILE,
    IdentityNotConfigured,
    platform_identity_secret,
    service_identity_key,
)
from mlplane_runtime.platform.host import Platform, PlatformStartFailed
from mlplane_runtime.settings import RuntimeSettings

from .fixtures.example_service.plugin import make_plugin


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
    monkeypatch.delenv("MLPLANE_REGISTRY_IDENTITY_KEY", raising=False)


@pytest.mark.usefixtures("no_secret")
class TestPlatformSecret:
    def test_dev_makes_an_owner_only_secret_once_and_keeps_it(self, tmp_path: Path) -> None:
        settings = RuntimeSettings(env="dev", data_dir=tmp_path)

        first = platform_identity_secret(settings)
        again = platform_identity_secret(settings)

        path = tmp_path / IDENTITY_SECRET_FILE
        assert first is not None
        assert len(first) >= 32
        assert again == first
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_the_configured_secret_wins_and_no_file_is_made(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_IDENTITY_SECRET", "s" * 40)

        secret = platform_identity_secret(RuntimeSettings(env="dev", data_dir=tmp_path))

        assert secret == b"s" * 40
        assert not (tmp_path / IDENTITY_SECRET_FILE).exists()

    def test_outside_dev_nothing_is_made(self, tmp_path: Path) -> None:
        assert platform_identity_secret(RuntimeSettings(env="prod", data_dir=tmp_path)) is None
        assert not (tmp_path / IDENTITY_SECRET_FILE).exists()

    def test_a_service_without_any_key_is_refused_naming_what_to_set(self) -> None:
        with pytest.raises(IdentityNotConfigured, match="MLPLANE_REGISTRY_IDENTITY_KEY"):
            service_identity_key("registry", None, "prod")

    def test_a_services_own_key_comes_before_the_shared_secret(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        own = bytes(range(32))
        monkeypatch.setenv("MLPLANE_REGISTRY_IDENTITY_KEY", own.hex())

        assert service_identity_key("registry", b"x" * 32, "prod") == own
        assert service_identity_key("scanner", b"x" * 32, "prod") == derive_identity_key(
            b"x" * 32, "scanner"
        )


@pytest.mark.usefixtures("no_secret")
async def test_a_production_platform_without_identity_keys_does_not_start(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    schema, bus_schema = f"t_{uuid4().hex[:10]}", f"t_{uuid4().hex[:10]}"
    settings = RuntimeSettings(env="prod", database_url=database_url, data_dir=tmp_path)
    platform = Platform(settings, [make_plugin("idsecprod", schema)], bus_schema=bus_schema)
    try:
        with pytest.raises(PlatformStartFailed, match="MLPLANE_IDSECPROD_IDENTITY_KEY"):
            await platform.start()
    finally:
        await platform.stop()
        await database.drop_schema(schema)
        await database.drop_schema(bus_schema)
