"""Credentials an attacker can make up: headers, and identity tokens that look like the
gateway's but are not (wrong secret, another service's key, `alg: none`, another
audience, expired)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

from mlplane_contracts.scopes import ALL_SCOPES
from mlplane_runtime.forwarded_identity import (
    IDENTITY_HEADER,
    ISSUER,
    PRINCIPAL_HEADER,
    TEAM_HEADER,
    derive_identity_key,
)

FORGED_PRINCIPAL = "user:security-lead"


def forged_headers(team: str) -> dict[str, str]:
    """What a caller who skips the gateway would send to act for `team`."""
    return {TEAM_HEADER: team, PRINCIPAL_HEADER: FORGED_PRINCIPAL}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _claims(audience: str, team: str | None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": FORGED_PRINCIPAL,
        "scopes": sorted(ALL_SCOPES),
        "iat": now,
        "exp": now + 30,
        "jti": uuid.uuid4().hex,
    }
    if team is not None:
        claims["team"] = team
    claims.update(overrides)
    return claims


def _token(key: bytes, claims: dict[str, Any], alg: str = "HS256") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    if alg == "none":
        return f"{signing_input}."
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def forged_tokens(audience: str, team: str, secret: bytes) -> dict[str, dict[str, str]]:
    """Identity headers for `audience` acting for `team`, each refused by the service;
    `secret` is the platform's real identity secret (used only where the forgery is
    in something else: the audience, the key of another service, the expiry)."""
    other = "scanner" if audience != "scanner" else "registry"
    own_key = derive_identity_key(secret, audience)
    now = int(time.time())
    tokens = {
        "wrong secret": _token(
            derive_identity_key(secrets.token_bytes(32), audience), _claims(audience, team)
        ),
        "another service's key": _token(
            derive_identity_key(secret, other), _claims(audience, team)
        ),
        "alg none": _token(b"", _claims(audience, team), alg="none"),
        "another audience": _token(derive_identity_key(secret, other), _claims(other, team)),
        "expired": _token(own_key, _claims(audience, team, iat=now - 120, exp=now - 90)),
        "the secret itself as key": _token(secret, _claims(audience, team)),
    }
    return {name: {IDENTITY_HEADER: token} for name, token in tokens.items()}


def valid_token(audience: str, team: str | None, secret: bytes) -> dict[str, str]:
    """A genuine identity header: what the gateway would sign (never accepted *by* the
    gateway, which authenticates API keys and OIDC tokens only)."""
    return {IDENTITY_HEADER: _token(derive_identity_key(secret, audience), _claims(audience, team))}
