"""Gateway settings fail fast on missing or placeholder secrets and half an OIDC setup."""

from __future__ import annotations

import pytest
from mlplane_gateway.settings import GatewaySettings, load_settings
from mlplane_runtime.errors import InvalidInput

REAL = "r" * 40


def test_dev_runs_without_a_secret_key() -> None:
    assert GatewaySettings(env="dev").pepper()


@pytest.mark.parametrize("secret", [None, "changeme", "short"])
def test_outside_dev_a_real_secret_key_is_required(secret: str | None) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        GatewaySettings(env="prod", secret_key=secret)


def test_a_placeholder_bootstrap_key_is_refused() -> None:
    with pytest.raises(ValueError, match="BOOTSTRAP_ADMIN_KEY"):
        GatewaySettings(env="prod", secret_key=REAL, bootstrap_admin_key="password")


def test_oidc_needs_issuer_audience_and_one_jwks() -> None:
    with pytest.raises(ValueError, match="go together"):
        GatewaySettings(oidc_issuer="https://idp", oidc_jwks_json="{}")
    with pytest.raises(ValueError, match="one of"):
        GatewaySettings(oidc_issuer="https://idp", oidc_audience="a")
    assert GatewaySettings(
        oidc_issuer="https://idp", oidc_audience="a", oidc_jwks_url="https://idp/jwks"
    ).oidc_enabled


def test_load_settings_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_GATEWAY_KEY_BURST", "0")
    with pytest.raises(InvalidInput, match="MLPLANE_GATEWAY_KEY_BURST"):
        load_settings()
