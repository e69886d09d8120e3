"""Where the deployer finds the scanner and the key it signs with, decided at build time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlplane_deployer.manifest_scan_target import (
    ManifestScanNotConfigured,
    manifest_scan_gate,
    platform_url,
    scanner_key,
)
from mlplane_deployer.settings import DeployerSettings
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.service import ServiceContext
from mlplane_runtime.settings import RuntimeSettings

SECRET = b"s" * 40


def context(
    tmp_path: Path,
    secret: bytes | None = SECRET,
    port: int = 8080,
    hosted: frozenset[str] = frozenset({"deployer"}),
) -> ServiceContext:
    return ServiceContext(
        name="deployer",
        settings=RuntimeSettings(http_port=port, http_host="0.0.0.0"),
        database=None,  # type: ignore[arg-type]  # never reached: nothing connects here
        uow_factory=None,  # type: ignore[arg-type]
        transport=None,  # type: ignore[arg-type]
        data_dir=tmp_path,
        identity_secret=secret,
        hosted=hosted,
    )


ONE_PROCESS = frozenset({"gateway", "registry", "builder", "scanner", "deployer", "drift"})


@pytest.mark.parametrize(
    "settings",
    [DeployerSettings(), DeployerSettings(gitops_remote="https://git.example.com/gitops.git")],
    ids=["embedded", "remote-gitops"],
)
def test_one_process_scans_with_the_scanner_of_the_same_platform(
    tmp_path: Path, settings: DeployerSettings
) -> None:
    gate = manifest_scan_gate(settings, context(tmp_path, port=9090, hosted=ONE_PROCESS))
    assert gate.client is not None
    assert gate.client.base_url == "http://127.0.0.1:9090/scanner"
    assert gate.client.key == derive_identity_key(SECRET, "scanner")


@pytest.mark.parametrize(
    ("configured", "called"),
    [
        ("http://scanner:8083", "http://scanner:8083/scanner"),
        ("http://scanner:8083/", "http://scanner:8083/scanner"),
        ("https://proxy.example.com/mlplane/scanner/", "https://proxy.example.com/mlplane/scanner"),
    ],
)
def test_a_configured_scanner_url_wins_a_bare_address_with_the_scanners_mount(
    tmp_path: Path, configured: str, called: str
) -> None:
    settings = DeployerSettings(scanner_url=configured)  # type: ignore[arg-type]
    gate = manifest_scan_gate(settings, context(tmp_path, hosted=ONE_PROCESS))
    assert gate.client is not None
    assert gate.client.base_url == called


@pytest.mark.parametrize(
    "settings",
    [DeployerSettings(), DeployerSettings(gitops_remote="https://git.example.com/gitops.git")],
    ids=["embedded", "remote-gitops"],
)
def test_a_deployer_served_alone_without_a_scanner_url_refuses_to_start(
    tmp_path: Path, settings: DeployerSettings
) -> None:
    # `mlplane serve deployer`: the scanner may be installed, but nothing serves it here.
    with pytest.raises(ManifestScanNotConfigured) as refused:
        manifest_scan_gate(settings, context(tmp_path))
    assert "MLPLANE_DEPLOYER_SCANNER_URL" in refused.value.detail
    assert "MLPLANE_DEPLOYER_MANIFEST_SCAN=off" in refused.value.detail


def test_scans_switched_off_say_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = DeployerSettings(
        gitops_remote="https://git.example.com/gitops.git", manifest_scan="off"
    )
    with caplog.at_level(logging.WARNING, logger="mlplane.deployer"):
        gate = manifest_scan_gate(settings, context(tmp_path, secret=None))
    assert gate.client is None
    assert "MLPLANE_DEPLOYER_MANIFEST_SCAN=off" in caplog.text


async def test_every_unscanned_deployment_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    gate = manifest_scan_gate(DeployerSettings(manifest_scan="off"), context(Path("/nonexistent")))
    with caplog.at_level(logging.WARNING, logger="mlplane.deployer"):
        await gate.check("acme", "dev", [])
        await gate.check("acme", "prod", [])
    assert caplog.text.count("committed without the scanner's verdict") == 2


def test_the_key_is_the_configured_one_else_derived_else_refused() -> None:
    own = "ab" * 32
    configured = DeployerSettings(scanner_identity_key=own)  # type: ignore[arg-type]
    assert scanner_key(configured, SECRET) == bytes.fromhex(own)
    assert scanner_key(DeployerSettings(), SECRET) == derive_identity_key(SECRET, "scanner")
    with pytest.raises(ManifestScanNotConfigured, match="MLPLANE_IDENTITY_SECRET"):
        scanner_key(DeployerSettings(), None)
    for bad in ("not hex", "ab" * 8):
        with pytest.raises(ManifestScanNotConfigured, match="SCANNER_IDENTITY_KEY"):
            scanner_key(DeployerSettings(scanner_identity_key=bad), SECRET)  # type: ignore[arg-type]


def test_a_wildcard_bind_is_reached_on_loopback() -> None:
    assert platform_url(RuntimeSettings(http_host="::", http_port=1)) == "http://[::1]:1"
    assert platform_url(RuntimeSettings(http_host="10.0.0.5", http_port=2)) == "http://10.0.0.5:2"
