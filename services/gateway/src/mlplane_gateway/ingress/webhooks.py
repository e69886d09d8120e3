"""Webhook authentication: GitHub's HMAC signature, GitLab's token, per-team secrets.

A team's webhook secret is never stored. It is derived: HMAC-SHA256 of the team
and a random nonce (stored) under a key derived from the gateway's secret key.
Verifying a GitHub signature needs the secret itself, so a one-way hash of it
could not be kept; deriving it gives what encrypting it would (the table alone
reveals nothing) with nothing to decrypt. Rotating draws a new nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (a label, not a secret)
SIGNATURE_PREFIX = "sha256="
_SECRET_LABEL = b"mlplane-gateway/webhook-secret/v1"


def new_nonce() -> str:
    return secrets.token_hex(16)


def derive_secret(pepper: bytes, team: str, nonce: str) -> str:
    """The webhook secret of `team` for the stored `nonce`."""
    derivation_key = hmac.new(pepper, _SECRET_LABEL, hashlib.sha256).digest()
    mac = hmac.new(derivation_key, f"{team}\x00{nonce}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def github_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` of `body`: `sha256=` and the hex HMAC-SHA256 under `secret`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of the raw `body` (constant-time comparison)."""
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(github_signature(secret, body).encode(), header.encode())


def gitlab_token_valid(secret: str, header: str | None) -> bool:
    """True when the `X-Gitlab-Token` header is the team's secret (constant-time comparison)."""
    if header is None:
        return False
    return hmac.compare_digest(secret.encode(), header.encode())
