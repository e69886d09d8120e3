"""OIDC bearer JWTs: the checks on issuer, audience, time and algorithm, and JWKS refresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ..conftest import Harness, SigningKey, claims


async def list_keys(harness: Harness, token: str) -> Any:
    return await harness.client.get("/v1/keys", headers=harness.bearer(token))


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
async def test_a_valid_token_admits_its_team_and_scopes(
    harness: Harness, team: str, key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    token = key.sign(claims(team, "admin models:read"))
    response = await list_keys(harness, token)
    assert response.status_code == 200, response.text


async def test_scopes_may_come_as_a_list_claim(
    harness_for: Any, team: str, rsa_key: SigningKey
) -> None:
    harness: Harness = await harness_for(oidc_scopes_claim="scp")
    token = rsa_key.sign(claims(team, scope=None, scp=["admin"]))
    assert (await list_keys(harness, token)).status_code == 200


async def test_a_token_without_the_scope_is_forbidden(
    harness: Harness, team: str, rsa_key: SigningKey
) -> None:
    response = await list_keys(harness, rsa_key.sign(claims(team, "models:read")))
    assert response.status_code == 403


async def test_a_token_sees_only_its_team(
    harness: Harness, team: str, other_team: str, rsa_key: SigningKey
) -> None:
    token = rsa_key.sign(claims(team, "admin"))
    response = await harness.client.get(
        "/v1/keys", params={"team": other_team}, headers=harness.bearer(token)
    )
    assert response.status_code == 404


def _later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


# Claims are made when the case runs, not when this module is imported: a full suite
# reaches these tests minutes after collection, when "10 minutes from now" has passed.
REFUSED: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "wrong issuer": (lambda: {"iss": "https://evil.test"}, "issuer"),
    "wrong audience": (lambda: {"aud": "someone-else"}, "audience"),
    "expired": (lambda: {"exp": _later(minutes=-5), "nbf": _later(minutes=-10)}, "expired"),
    "not yet valid": (lambda: {"nbf": _later(minutes=10)}, "not valid yet"),
    "no exp": (lambda: {"exp": None}, "'exp'"),
    "no nbf": (lambda: {"nbf": None}, "'nbf'"),
    "no team": (lambda: {"mlplane_team": None}, "team"),
    "team not a label": (lambda: {"mlplane_team": "Not A Label"}, "team"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_token_failing_a_check_is_refused(
    harness: Harness, team: str, rsa_key: SigningKey, case: str
) -> None:
    overrides, reason = REFUSED[case]
    response = await list_keys(harness, rsa_key.sign(claims(team, "admin", **overrides())))
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_is_refused(harness: Harness, team: str) -> None:
    body = {**claims(team, "admin"), "exp": int(_later(minutes=5).timestamp()), "iat": 0, "nbf": 0}
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(body)}."
    response = await list_keys(harness, token)
    assert response.status_code == 401
    assert "'none'" in response.json()["detail"]


async def test_hs256_signed_with_the_public_key_is_refused(
    harness: Harness, team: str, rsa_key: SigningKey
) -> None:
    # The classic confusion attack: the issuer's public key used as an HMAC secret.
    from cryptography.hazmat.primitives import serialization

    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Signed by hand: PyJWT itself refuses to use a PEM key as an HMAC secret.
    body = {**claims(team, "admin"), "iat": 0}
    body = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in body.items()}
    signing_input = f"{_b64({'alg': 'HS256', 'kid': rsa_key.kid})}.{_b64(body)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    response = await list_keys(harness, token)
    assert response.status_code == 401
    assert "HS256" in response.json()["detail"]


async def test_a_token_signed_by_an_unpublished_key_is_refused(harness: Harness, team: str) -> None:
    stranger = SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048))
    response = await list_keys(harness, stranger.sign(claims(team, "admin")))
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]


async def test_an_es256_header_on_an_rsa_key_is_refused(
    harness: Harness, team: str, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    token = jwt.encode(
        claims(team, "admin"), ec_key.private, algorithm="ES256", headers={"kid": rsa_key.kid}
    )
    assert (await list_keys(harness, token)).status_code == 401


# -- a JWKS served over HTTP ----------------------------------------------------------


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose key set the test can change."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


async def test_a_remote_jwks_is_fetched_once_and_refetched_for_a_new_kid(
    harness_for: Callable[..., Any], jwks_server: JwksServer, team: str, rsa_key: SigningKey
) -> None:
    jwks_server.keys = [rsa_key.jwk()]
    harness: Harness = await harness_for(
        oidc_jwks_json=None, oidc_jwks_url=jwks_server.url, oidc_jwks_refresh_cooldown_s=0
    )
    for _ in range(3):
        assert (await list_keys(harness, rsa_key.sign(claims(team, "admin")))).status_code == 200
    assert jwks_server.hits == 1

    rotated = SigningKey("rsa-2", "RS256", rsa.generate_private_key(65537, 2048))
    jwks_server.keys = [rsa_key.jwk(), rotated.jwk()]
    assert (await list_keys(harness, rotated.sign(claims(team, "admin")))).status_code == 200
    assert jwks_server.hits == 2


async def test_unknown_kids_do_not_hammer_the_issuer(
    harness_for: Callable[..., Any], jwks_server: JwksServer, team: str, rsa_key: SigningKey
) -> None:
    jwks_server.keys = [rsa_key.jwk()]
    harness: Harness = await harness_for(
        oidc_jwks_json=None, oidc_jwks_url=jwks_server.url, oidc_jwks_refresh_cooldown_s=60
    )
    stranger = SigningKey("nobody", "RS256", rsa_key.private)
    for _ in range(5):
        assert (await list_keys(harness, stranger.sign(claims(team, "admin")))).status_code == 401
    assert jwks_server.hits == 1
