"""API keys: their format, how they are made, and how a presented key is checked.

A key reads `mlp_<id>_<secret>`: `id` is 8 lowercase alphanumerics, the primary
key of its row (the lookup), `secret` 43 base64url characters (256 bits). Only a
keyed hash of the whole key is stored: HMAC-SHA256 under a key derived from the
gateway's secret key (the "pepper"). A stolen table is useless without the
pepper, and a 256-bit random secret needs no slow hash: nobody can guess it, so
there is nothing for a slow hash to protect against.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from mlplane_gateway.auth.principals import Principal, PrincipalKind, Scope

KEY_PREFIX = "mlp_"
ID_LENGTH = 8
SECRET_BYTES = 32
_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY = re.compile(r"mlp_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")
_KEY_HASH_LABEL = b"mlplane-gateway/api-key-hash/v1"


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A syntactically valid key as a caller sent it."""

    key_id: str
    full: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    team: str
    name: str
    scopes: frozenset[Scope]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    key_hash: bytes

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def principal(self) -> Principal:
        return Principal(
            kind=PrincipalKind.API_KEY,
            id=f"apikey:{self.id}",
            team=self.team,
            scopes=self.scopes,
            expires_at=self.expires_at,
        )


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def parse_key(token: str) -> PresentedKey | None:
    """The key in `token`, or None when it is not shaped like one of ours."""
    match = _KEY.fullmatch(token)
    if match is None:
        return None
    return PresentedKey(key_id=match.group(1), full=token)


def new_key_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def new_key(key_id: str) -> str:
    """A fresh key with id `key_id` (shown to its creator once, then only hashed)."""
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def hash_key(pepper: bytes, key: str) -> bytes:
    """The stored form of `key` under the gateway's `pepper`."""
    hash_key_ = hmac.new(pepper, _KEY_HASH_LABEL, hashlib.sha256).digest()
    return hmac.new(hash_key_, key.encode(), hashlib.sha256).digest()


def key_matches(pepper: bytes, presented: PresentedKey, stored_hash: bytes) -> bool:
    """True when the presented key hashes to `stored_hash` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(pepper, presented.full), stored_hash)
