"""Sign-in with the identity provider: OAuth 2.0 authorization code with PKCE (S256).

The console is a confidential or public client of the IdP the gateway already trusts
for bearer tokens (`MLPLANE_GATEWAY_OIDC_*`); these settings name its client and the
IdP's two endpoints. The access token the IdP hands back is checked exactly as a
bearer token on the API (`OidcVerifier`), so it must carry the gateway's audience
and the team claim; the session lasts until that token expires (8 hours at most).

Between the redirect to the IdP and its return, the login in flight (state, PKCE
verifier, nonce, the page to go back to) is kept in a short-lived cookie, HMAC-signed
with a key derived from the gateway's secret key: `HttpOnly`, `SameSite=Lax` (the
IdP's redirect back is a cross-site top-level GET, which a Strict cookie would not
follow), scoped to the callback path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from functools import cache
from typing import Final
from urllib.parse import urlencode

from mlplane_runtime.settings import load_settings
from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PENDING_COOKIE: Final = "mlplane_oidc_login"
CALLBACK_PATH: Final = "/console/oidc/callback"
PENDING_TTL_S: Final = 600
_LABEL: Final = b"mlplane-console/oidc-login/v1"


class ConsoleSettings(BaseSettings):
    """`MLPLANE_CONSOLE_*`: the console's OIDC client (all unset: API-key sign-in only)."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_CONSOLE_", extra="ignore")

    oidc_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    oidc_client_secret: SecretStr | None = None
    """Sent to the token endpoint when set (a confidential client); PKCE either way."""
    oidc_authorization_url: AnyHttpUrl | None = None
    oidc_token_url: AnyHttpUrl | None = None
    oidc_scopes: str = Field(default="openid", min_length=1, max_length=512)
    oidc_redirect_url: AnyHttpUrl | None = None
    """Where the IdP sends people back (unset: this request's origin + the callback path;
    set it behind a proxy that rewrites the host)."""

    def oidc_ready(self) -> bool:
        return (
            self.oidc_client_id is not None
            and self.oidc_authorization_url is not None
            and self.oidc_token_url is not None
        )


@cache
def console_settings() -> ConsoleSettings:
    """Read once per process (InvalidInput naming a bad variable)."""
    return load_settings(ConsoleSettings)


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    verifier: str
    next_path: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def code_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)), unpadded."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def new_pending(next_path: str, now: float | None = None) -> PendingLogin:
    return PendingLogin(
        state=secrets.token_urlsafe(32),
        # 43..128 characters of the unreserved set (RFC 7636 §4.1): 64 bytes → 86.
        verifier=secrets.token_urlsafe(64),
        next_path=next_path,
        expires_at=int((now if now is not None else time.time()) + PENDING_TTL_S),
    )


def authorization_url(settings: ConsoleSettings, pending: PendingLogin, redirect_uri: str) -> str:
    assert settings.oidc_authorization_url is not None
    assert settings.oidc_client_id is not None
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": settings.oidc_scopes,
            "state": pending.state,
            "code_challenge": code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
    )
    base = str(settings.oidc_authorization_url)
    return f"{base}{'&' if '?' in base else '?'}{query}"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def seal(pending: PendingLogin, secret: bytes) -> str:
    """The login in flight as a cookie value, signed."""
    body = _b64(
        json.dumps(
            [pending.state, pending.verifier, pending.next_path, pending.expires_at],
            separators=(",", ":"),
        ).encode()
    )
    signature = _b64(hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{signature}"


def unseal(value: str | None, secret: bytes, now: float | None = None) -> PendingLogin | None:
    """The login a cookie holds, or None when absent, forged, malformed or stale."""
    if not value or len(value) > 2048 or value.count(".") != 1:
        return None
    body, signature = value.split(".")
    expected = _b64(hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        state, verifier, next_path, expires_at = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (state, verifier, next_path)):
        return None
    if not isinstance(expires_at, int):
        return None
    if expires_at < (now if now is not None else time.time()):
        return None
    return PendingLogin(state, verifier, next_path, expires_at)
