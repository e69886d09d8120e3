"""The caller of a service's request: a forwarded identity is always required (tokens
signed here as the gateway signs them); no header is trusted on its own."""

# No `from __future__ import annotations`: FastAPI resolves the test route's annotations.

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from mlplane_runtime.app import create_service_app
from mlplane_runtime.caller import IdentityVerifier, caller_dependencies, identity_key
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.forwarded_identity import (
    ISSUER,
    InvalidForwardedIdentity,
    derive_identity_key,
)
from mlplane_runtime.identity_secret import IdentityNotConfigured, service_identity_key

SECRET = b"caller-test-identity-secret-0123456789"
KEY = derive_identity_key(SECRET, "registry")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(key: bytes = KEY, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "registry",
        "sub": "apikey:abc12345",
        "team": "fraud",
        "scopes": ["models:read"],
        "iat": now,
        "exp": now + 30,
        "jti": "j1",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def client_for(key: bytes) -> httpx.AsyncClient:
    deps = caller_dependencies("registry", key)
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(
        team: Annotated[str, Depends(deps.team)], who: Annotated[str, Depends(deps.principal)]
    ) -> dict[str, str]:
        return {"team": team, "principal": who}

    app = create_service_app("registry", routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc.test")


async def test_headers_alone_are_never_trusted() -> None:
    async with client_for(KEY) as client:
        forged = await client.get(
            "/whoami", headers={"X-Mlplane-Team": "fraud", "X-Mlplane-Principal": "user:bo"}
        )
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"


def test_a_service_cannot_be_built_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
    monkeypatch.delenv("MLPLANE_REGISTRY_IDENTITY_KEY", raising=False)
    with pytest.raises(IdentityNotConfigured, match="MLPLANE_IDENTITY_SECRET"):
        service_identity_key("registry", None, "prod")
    with pytest.raises(ValueError, match="32 bytes"):
        caller_dependencies("registry", b"short")


async def test_a_token_without_the_routes_scope_is_forbidden() -> None:
    deps = caller_dependencies("registry", KEY)
    router = APIRouter(dependencies=[Depends(deps.scoped(read="models:read", write="admin"))])

    @router.get("/thing")
    async def read_thing() -> dict[str, str]:
        return {"ok": "read"}

    @router.post("/thing")
    async def change_thing() -> dict[str, str]:
        return {"ok": "changed"}

    app = create_service_app("registry", routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc.test"
    ) as client:
        identity = {"X-Mlplane-Identity": token(scopes=["models:read"])}
        read = await client.get("/thing", headers=identity)
        change = await client.post("/thing", headers=identity)
        none = await client.get("/thing", headers={"X-Mlplane-Identity": token(scopes=[])})
    assert read.status_code == 200
    assert change.status_code == 403
    assert change.headers["content-type"] == "application/problem+json"
    assert change.json()["required_scope"] == "admin"
    assert none.status_code == 403


async def test_with_a_key_the_team_and_principal_come_from_the_token() -> None:
    async with client_for(KEY) as client:
        answer = await client.get(
            "/whoami",
            headers={
                "X-Mlplane-Identity": token(),
                # A header naming another team changes nothing: the token's team wins.
                "X-Mlplane-Team": "payments",
                "X-Mlplane-Principal": "user:mallory",
            },
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"team": "fraud", "principal": "apikey:abc12345"}


async def test_the_operators_token_acts_for_the_team_it_names_in_the_header() -> None:
    async with client_for(KEY) as client:
        answer = await client.get(
            "/whoami",
            headers={
                "X-Mlplane-Identity": token(team=None, sub="bootstrap"),
                "X-Mlplane-Team": "x",
            },
        )
    assert answer.json() == {"team": "x", "principal": "bootstrap"}


@pytest.mark.parametrize(
    "identity",
    [
        None,
        "not-a-token",
        token(key=derive_identity_key(SECRET, "scanner")),
        token(aud="scanner"),
        token(iat=int(time.time()) - 120, exp=int(time.time()) - 90),
    ],
    ids=["missing", "garbage", "other-services-key", "other-audience", "expired"],
)
async def test_with_a_key_a_request_without_a_valid_token_is_refused(identity: str | None) -> None:
    headers = {"X-Mlplane-Team": "fraud"}
    if identity is not None:
        headers["X-Mlplane-Identity"] = identity
    async with client_for(KEY) as client:
        answer = await client.get("/whoami", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/invalid-forwarded-identity")


def test_the_key_comes_from_the_services_own_setting_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLANE_IDENTITY_SECRET", SECRET.decode())
    assert identity_key("registry") == KEY
    own = bytes(range(32))
    monkeypatch.setenv("MLPLANE_REGISTRY_IDENTITY_KEY", own.hex())
    assert identity_key("registry") == own
    assert identity_key("scanner") == derive_identity_key(SECRET, "scanner")


def test_no_setting_means_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
    monkeypatch.delenv("MLPLANE_REGISTRY_IDENTITY_KEY", raising=False)
    assert identity_key("registry") is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLPLANE_REGISTRY_IDENTITY_KEY", "zz" * 32),
        ("MLPLANE_REGISTRY_IDENTITY_KEY", "ab" * 8),
        ("MLPLANE_IDENTITY_SECRET", "short"),
    ],
)
def test_a_key_that_cannot_be_used_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.delenv("MLPLANE_IDENTITY_SECRET", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput, match=variable):
        identity_key("registry")


def test_a_token_seen_before_is_still_refused_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = IdentityVerifier("registry", KEY)
    seen = token()
    assert verifier.caller(seen, None).team == "fraud"
    assert verifier.caller(seen, None).team == "fraud"  # remembered
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidForwardedIdentity, match="expired"):
        verifier.caller(seen, None)


def test_a_forged_token_is_refused_every_time() -> None:
    verifier = IdentityVerifier("registry", KEY)
    forged = token(key=derive_identity_key(b"another-secret-0123456789abcdef0123", "registry"))
    for _ in range(2):
        with pytest.raises(InvalidForwardedIdentity, match="signature"):
            verifier.caller(forged, None)
    # Same claims, the right key: accepted, and the forged one still is not.
    assert verifier.caller(token(), None).team == "fraud"
    with pytest.raises(InvalidForwardedIdentity):
        verifier.caller(forged, None)
