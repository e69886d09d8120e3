"""Single sign-on: the console as an OAuth 2.0 client (authorization code with PKCE)
of an identity provider the gateway trusts, in a browser against `mlplane up`.

The identity provider is a small one made here (authorize, token), serving on
loopback: it consents at once, checks the PKCE verifier against the challenge as a
real one does (RFC 7636), and issues RS256 access tokens for the gateway's audience.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .conftest import BOOTSTRAP_KEY, assert_accessible, e2e, shot

ISSUER = "https://idp.console-test.local/realms/mlplane"
AUDIENCE = "mlplane-gateway"
CLIENT_ID = "mlplane-console"
KID = "console-test-key"


@dataclass
class IdentityProvider:
    url: str
    jwks: str
    exchanges: list[dict[str, Any]] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public_jwk.update(kid=KID, alg="RS256", use="sig")
    port = _free_port()
    provider = IdentityProvider(
        url=f"http://127.0.0.1:{port}", jwks=json.dumps({"keys": [public_jwk]})
    )
    codes: dict[str, dict[str, str]] = {}

    async def authorize(request: Request) -> Response:
        q = request.query_params
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != CLIENT_ID
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(target, status_code=302)

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        issued = codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        verified = issued is not None and challenge == issued["challenge"]
        provider.exchanges.append({"verified": verified, "client_id": form.get("client_id")})
        if not verified or issued is None or form.get("redirect_uri") != issued["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "mlplane_team": "default",
            "scope": "openid models:read deploy:approve",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
        }
        access = jwt.encode(claims, private, algorithm="RS256", headers={"kid": KID})
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 600})

    app = Starlette(
        routes=[
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test identity provider did not start"
    yield provider
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider
) -> Iterator[Any]:
    """`mlplane up` trusting the test IdP's tokens, the console its client."""
    yield from e2e.running_platform(
        platform_database,
        tmp_path_factory,
        {
            "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
            "MLPLANE_GATEWAY_OIDC_ISSUER": ISSUER,
            "MLPLANE_GATEWAY_OIDC_AUDIENCE": AUDIENCE,
            "MLPLANE_GATEWAY_OIDC_JWKS_JSON": idp.jwks,
            "MLPLANE_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
            "MLPLANE_CONSOLE_OIDC_AUTHORIZATION_URL": idp.url + "/authorize",
            "MLPLANE_CONSOLE_OIDC_TOKEN_URL": idp.url + "/token",
        },
    )


def test_single_sign_on_with_pkce_opens_a_session(
    platform: Any, idp: IdentityProvider, page: Page
) -> None:
    httpx.post(
        platform.url + "/v1/registry/models",
        json={"name": "sso-visible"},
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}", "X-Mlplane-Team": "default"},
        timeout=30.0,
    ).raise_for_status()
    page.goto(platform.url + "/console/scans")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_accessible(page, "sign in with single sign-on")
    page.get_by_role("button", name="Sign in with single sign-on").click()
    # Back from the IdP, on the page first asked for, as team default.
    expect(page.get_by_role("heading", level=1)).to_have_text("Scans")
    expect(page.locator("header")).to_contain_text("team default")
    assert idp.exchanges == [{"verified": True, "client_id": CLIENT_ID}]
    page.goto(platform.url + "/console/")
    expect(page.get_by_role("link", name="sso-visible")).to_be_visible()
    shot(page, "11-signed-in-with-sso")
    # The login cookie was for the callback only, and is gone.
    names = {cookie["name"] for cookie in page.context.cookies()}
    assert names == {"mlplane_session"}


def test_a_callback_this_browser_did_not_start_is_refused(platform: Any) -> None:
    with httpx.Client(base_url=platform.url, timeout=30.0) as client:
        forged = client.get("/console/oidc/callback", params={"code": "x", "state": "y"})
    assert forged.status_code == 400
    assert "was not started here" in forged.text
    assert "set-cookie" not in forged.headers
