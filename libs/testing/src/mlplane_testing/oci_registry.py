"""A real OCI registry for tests: the one at MLPLANE_TEST_OCI_REGISTRY, or one started here.

`oci_registry` (session scope) uses the registry at `MLPLANE_TEST_OCI_REGISTRY`
(default http://127.0.0.1:5000, where `scripts/ensure-services.sh` starts one) when
it answers; otherwise it starts CNCF distribution (`docker-registry serve`, what
Harbor runs inside) on a free port with a temporary storage directory, and stops
it after the session. Tests share the registry, so each pushes to its own
repository: `unique_repository()`.

`DistributionRegistry.start(...)` starts an extra registry for one test: with a
custom configuration, one to stop mid-test, or with token authentication against
a `TokenIssuer` (`DistributionRegistry.start(auth=issuer.auth_config())`), which
signs JWTs the way distribution verifies them: RS256 with the signing
certificate in the `x5c` header, the certificate in the registry's rootcertbundle.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mlplane_testing.http_server import free_port

DEFAULT_TEST_OCI_REGISTRY = "http://127.0.0.1:5000"
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
TOKEN_SERVICE = "mlplane-test-registry"
TOKEN_ISSUER = "mlplane-test-token-issuer"


@dataclass(frozen=True)
class OciRegistryEndpoint:
    """Where a test registry answers (`http://127.0.0.1:<port>`)."""

    url: str

    @property
    def host(self) -> str:
        """`host:port`, as image references name the registry."""
        return urlsplit(self.url).netloc


def unique_repository(prefix: str = "t") -> str:
    """A repository no other test uses: `mlplane-test/<prefix>-<16 hex>`."""
    return f"mlplane-test/{prefix}-{uuid4().hex[:16]}"


def registry_answers(url: str) -> bool:
    """True when something answers `/v2/` as a registry does (200, or 401 with auth)."""
    try:
        response = httpx.get(f"{url}/v2/", timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 401)


def registry_binary() -> str:
    """The distribution binary: /usr/bin/docker-registry (Debian), else from PATH."""
    for candidate in (
        "/usr/bin/docker-registry",
        shutil.which("docker-registry"),
        shutil.which("registry"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "no docker-registry binary: apt-get install -y docker-registry, "
        "or set MLPLANE_TEST_OCI_REGISTRY to a running registry"
    )


def registry_config(storage_dir: Path, port: int, **overrides: Any) -> dict[str, Any]:
    """A distribution 2.8 configuration: filesystem storage, deletes on, 127.0.0.1 only."""
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        # A fixed secret: several registries on one storage would need the same one.
        "http": {"addr": f"127.0.0.1:{port}", "secret": f"mlplane-test-{uuid4().hex}"},
    }
    config.update(overrides)
    return config


@dataclass
class DistributionRegistry:
    """A `docker-registry serve` process owned by this process."""

    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> OciRegistryEndpoint:
        return OciRegistryEndpoint(self.url)

    @classmethod
    def start(cls, **overrides: Any) -> DistributionRegistry:
        """Start on a free port with temporary storage; top-level config keys (`auth`,
        `http`, ...) in `overrides` replace the defaults. Waits until `/v2/` answers."""
        directory = Path(tempfile.mkdtemp(prefix="mlplane-oci-registry-"))
        port = free_port()
        config = registry_config(directory / "data", port, **overrides)
        # JSON is YAML: distribution reads this file as it reads its config.yml.
        (directory / "config.yml").write_text(json.dumps(config, indent=2))
        with (directory / "registry.log").open("wb") as log:
            process = subprocess.Popen(
                [registry_binary(), "serve", str(directory / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
            )
        registry = cls(process=process, directory=directory, port=port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if registry_answers(registry.url):
                return registry
            time.sleep(0.05)
        tail = registry.log()[-2000:]
        registry.stop()
        raise RuntimeError(f"docker-registry did not answer in {START_TIMEOUT_S} s:\n{tail}")

    def log(self) -> str:
        path = self.directory / "registry.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, *, remove: bool = True) -> None:
        """SIGTERM, SIGKILL after a grace period; then remove its directory."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_GRACE_S)
        finally:
            if remove:
                shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[OciRegistryEndpoint]:
    """A real registry for the session (MLPLANE_TEST_OCI_REGISTRY, else started here)."""
    url = os.environ.get("MLPLANE_TEST_OCI_REGISTRY", DEFAULT_TEST_OCI_REGISTRY).rstrip("/")
    if registry_answers(url):
        yield OciRegistryEndpoint(url)
        return
    registry = DistributionRegistry.start()
    try:
        yield registry.endpoint
    finally:
        registry.stop()


# Token authentication (what Harbor and Docker Hub do)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenIssuer:
    """A token endpoint on 127.0.0.1 for distribution's `auth: token`, in a thread.

    Grants every scope asked for to anonymous callers, or, when `username` is set,
    only to callers presenting it with `password` by Basic auth (401 otherwise).
    `requests` records each token request's (username or None, scopes).
    """

    directory: Path
    username: str | None = None
    password: str | None = None
    lifetime_s: int = 300
    requests: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = dt.datetime.now(dt.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.rootcertbundle = self.directory / "token-issuer.pem"
        self.rootcertbundle.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def auth_config(self) -> dict[str, Any]:
        """The registry's `auth` section that trusts this issuer."""
        return {
            "token": {
                "realm": self.realm,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(self.rootcertbundle),
            }
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_GRACE_S)

    def issue(self, scopes: tuple[str, ...], subject: str) -> str:
        """A JWT granting `scopes` (`repository:<name>:<actions>`) to `subject`."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [
                base64.b64encode(
                    self._certificate.public_bytes(serialization.Encoding.DER)
                ).decode()
            ],
        }
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + self.lifetime_s,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid4().hex,
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _caller(self, authorization: str | None) -> tuple[bool, str | None]:
        """(allowed, username) for a token request's Authorization header."""
        if self.username is None:
            return True, None
        if not authorization or not authorization.startswith("Basic "):
            return False, None
        try:
            user, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return False, None
        return (user == self.username and secret == self.password), user

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                scopes = tuple(query.get("scope", []))
                allowed, user = issuer._caller(self.headers.get("Authorization"))
                issuer.requests.append((user, scopes))
                if parts.path != "/token" or query.get("service") != [TOKEN_SERVICE]:
                    self._answer(400, {"errors": [{"code": "BAD_REQUEST", "message": "bad"}]})
                elif not allowed:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "no"}]})
                else:
                    token = issuer.issue(scopes, user or "anonymous")
                    body = {"token": token, "expires_in": issuer.lifetime_s}
                    self._answer(200, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # pytest shows failures; a line per token request is noise

        return Handler
