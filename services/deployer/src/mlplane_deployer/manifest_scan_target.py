"""Where the deployer finds the scanner for manifest scans, and the key it signs with.

Decided once, when the deployer is built:

- `MLPLANE_DEPLOYER_MANIFEST_SCAN=off`: no scan; a warning now and on every deployment;
- the scanner's URL: `MLPLANE_DEPLOYER_SCANNER_URL` (a bare address, as `mlplane serve
  scanner` listens on, gets the scanner's mount `/scanner`, as the gateway's upstream
  URLs do; a URL with a path is taken as it is); else, when the scanner is hosted in the
  same process (`mlplane up`, as `make run`, whatever the GitOps remote), this platform's
  own address (`http://<MLPLANE_HTTP_HOST>:<MLPLANE_HTTP_PORT>/scanner`); else the
  deployer refuses to start, naming both settings;
- the key: `MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY` (hex, the scanner's own key); else
  derived from the platform's identity secret (`MLPLANE_IDENTITY_SECRET`, or the dev
  secret `make run` keeps in its data directory), as the gateway derives it; else the
  deployer refuses to start.

Holding the scanner's key lets the deployer speak to the scanner as the gateway does;
it only ever signs `models:read` for the team of the deployment it scans.
"""

from __future__ import annotations

import binascii
import logging
from urllib.parse import urlsplit

from mlplane_runtime.caller import MIN_KEY_BYTES
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.service import ServiceContext
from mlplane_runtime.settings import RuntimeSettings

from mlplane_deployer.manifest_scan import SCANNER_AUDIENCE, ManifestScanGate, ScannerManifestClient
from mlplane_deployer.settings import DeployerSettings

_log = logging.getLogger("mlplane.deployer")


class ManifestScanNotConfigured(InvalidInput):
    """Manifest scans are on, but the deployer knows no scanner or no key to call it with."""

    title = "Manifest scan not configured"


def manifest_scan_gate(settings: DeployerSettings, context: ServiceContext) -> ManifestScanGate:
    """The gate the deployment worker asks before each commit (see the module's rules).

    Raises ManifestScanNotConfigured naming what to set.
    """
    if settings.manifest_scan == "off":
        _log.warning(
            "MLPLANE_DEPLOYER_MANIFEST_SCAN=off: rendered manifests are committed without "
            "the scanner's manifest scan"
        )
        return ManifestScanGate(None)
    if settings.scanner_url is not None:
        base_url = with_mount(str(settings.scanner_url))
    elif SCANNER_AUDIENCE in context.hosted:
        base_url = f"{platform_url(context.settings)}/{SCANNER_AUDIENCE}"
    else:
        raise ManifestScanNotConfigured(
            "the deployer scans rendered manifests with the scanner before committing them, "
            "and knows no scanner: set MLPLANE_DEPLOYER_SCANNER_URL (the scanner's base URL, "
            "e.g. http://scanner:8083), or MLPLANE_DEPLOYER_MANIFEST_SCAN=off to "
            "commit unscanned manifests"
        )
    key = scanner_key(settings, context.identity_secret)
    _log.info("rendered manifests are scanned by the scanner at %s before each commit", base_url)
    return ManifestScanGate(
        ScannerManifestClient(base_url, key, timeout_s=settings.scanner_timeout_s)
    )


def scanner_key(settings: DeployerSettings, platform_secret: bytes | None) -> bytes:
    """The scanner's identity key: the configured one, else derived from the platform's
    secret. Raises ManifestScanNotConfigured when there is neither or it is not a key."""
    own = settings.scanner_identity_key
    if own is not None:
        try:
            key = bytes.fromhex(own.get_secret_value().strip())
        except (ValueError, binascii.Error):
            raise ManifestScanNotConfigured(
                "MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY must be hex"
            ) from None
        if len(key) < MIN_KEY_BYTES:
            raise ManifestScanNotConfigured(
                f"MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY must be at least {MIN_KEY_BYTES} bytes"
            )
        return key
    if platform_secret is None:
        raise ManifestScanNotConfigured(
            "the deployer has no key to sign its manifest scans with: set "
            "MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY (the scanner's MLPLANE_SCANNER_IDENTITY_KEY) "
            "or MLPLANE_IDENTITY_SECRET, or MLPLANE_DEPLOYER_MANIFEST_SCAN=off"
        )
    return derive_identity_key(platform_secret, SCANNER_AUDIENCE)


def with_mount(url: str) -> str:
    """`url` as the deployer calls it: a bare address gets the scanner's mount."""
    url = url.rstrip("/")
    return url if urlsplit(url).path else f"{url}/{SCANNER_AUDIENCE}"


def platform_url(runtime: RuntimeSettings) -> str:
    """The address this process's platform serves on, as a client here reaches it."""
    host = runtime.http_host
    # A wildcard bind is reached on loopback from the same machine.
    if host in ("0.0.0.0", ""):  # noqa: S104
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{runtime.http_port}"
