"""Gateway settings fail fast on missing or placeholder secrets and half an OIDC setup."""

from __future__ import annotations

import pytest
from mlplane_gateway.settings import MAX_BODY_BYTES_CEILING, GatewaySettings, platform_url
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import RuntimeSettings, load_settings

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
        load_settings(GatewaySettings)


class TestUpstreams:
    def test_installed_services_default_to_the_platforms_own_address(self) -> None:
        runtime = RuntimeSettings(http_host="0.0.0.0", http_port=9123)
        urls = GatewaySettings().upstream_urls(platform_url(runtime), frozenset({"registry"}))
        assert urls == {"registry": "http://127.0.0.1:9123/registry"}

    def test_a_configured_url_wins_and_other_services_stay_unconfigured(self) -> None:
        settings = GatewaySettings(
            registry_url="http://registry:8080/registry/", drift_url="https://drift.internal/drift"
        )
        urls = settings.upstream_urls("http://127.0.0.1:8080", frozenset({"registry", "scanner"}))
        assert urls == {
            "registry": "http://registry:8080/registry",
            "scanner": "http://127.0.0.1:8080/scanner",
            "drift": "https://drift.internal/drift",
        }

    def test_a_bare_address_gets_the_services_mount(self) -> None:
        settings = GatewaySettings(
            registry_url="http://registry:8081", scanner_url="http://scanner:8083/"
        )
        urls = settings.upstream_urls(None, frozenset())
        assert urls == {
            "registry": "http://registry:8081/registry",
            "scanner": "http://scanner:8083/scanner",
        }

    def test_without_a_platform_only_configured_urls_count(self) -> None:
        assert GatewaySettings().upstream_urls(None, frozenset({"registry"})) == {}

    def test_an_ipv6_wildcard_is_reached_on_ipv6_loopback(self) -> None:
        assert platform_url(RuntimeSettings(http_host="::", http_port=80)) == "http://[::1]:80"


class TestIdentitySecret:
    def test_the_shared_secret_is_used_when_the_gateways_own_is_unset(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_IDENTITY_SECRET", REAL)
        assert load_settings(GatewaySettings).identity_key() == REAL.encode()
        monkeypatch.setenv("MLPLANE_GATEWAY_IDENTITY_SECRET", "g" * 40)
        assert load_settings(GatewaySettings).identity_key() == b"g" * 40

    def test_unset_the_platforms_own_secret_signs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
        platform = b"p" * 64
        assert GatewaySettings(secret_key=REAL).identity_key(platform) == platform

    def test_unset_it_is_derived_from_the_secret_key_and_is_not_the_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
        settings = GatewaySettings(secret_key=REAL)
        assert len(settings.identity_key()) == 32
        assert REAL.encode() not in settings.identity_key()
        assert GatewaySettings(secret_key="s" * 40).identity_key() != settings.identity_key()

    def test_a_placeholder_identity_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="IDENTITY_SECRET"):
            GatewaySettings(identity_secret="changeme")


def test_a_bad_allowlist_entry_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_GATEWAY_SINK_ALLOWLIST", '["127.0.0.0/8", "not-a-network"]')
    with pytest.raises(InvalidInput, match="not-a-network"):
        load_settings(GatewaySettings)
    monkeypatch.setenv("MLPLANE_GATEWAY_SINK_ALLOWLIST", '["10.0.0.0/8"]')
    assert [str(n) for n in load_settings(GatewaySettings).allowlist()] == ["10.0.0.0/8"]


def test_a_body_limit_past_what_the_ingress_routes_declare_is_refused() -> None:
    assert GatewaySettings(env="dev", max_body_bytes=MAX_BODY_BYTES_CEILING).max_body_bytes
    with pytest.raises(ValueError, match="max_body_bytes"):
        GatewaySettings(env="dev", max_body_bytes=MAX_BODY_BYTES_CEILING + 1)
