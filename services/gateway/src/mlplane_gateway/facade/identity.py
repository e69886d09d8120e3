"""The caller's identity, signed by the gateway for the one service a request goes to.

Each service verifies it with `mlplane_runtime.forwarded_identity` (see there for
the claims and why HS256 with a key derived per service). The gateway holds the
identity secret and derives each service's key; a service holds only its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable, Set
from typing import Final, Protocol

from mlplane_runtime.forwarded_identity import (
    ALGORITHM,
    ISSUER,
    MAX_LIFETIME_S,
    derive_identity_key,
)

DEFAULT_LIFETIME_S = 30


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# A compact JWS (RFC 7515) written here rather than by PyJWT, whose per-call key
# checks were most of the signing cost on every forwarded call; the header never changes.
_HEADER: Final = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())


class Caller(Protocol):
    """What the facade needs of an authenticated caller (the gateway's `Principal` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def team(self) -> str | None:
        """None: the operator, acting for every team."""
        ...

    @property
    def scopes(self) -> Set[str]: ...


class IdentitySigner:
    """Signs forwarded identities with keys derived from `secret` (at least 32 bytes)."""

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the identity secret must be at least 32 bytes")
        if not 0 < lifetime_s <= MAX_LIFETIME_S:
            raise ValueError(f"lifetime_s must be within 1..{MAX_LIFETIME_S}")
        self._secret = secret
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    def key_for(self, audience: str) -> bytes:
        """The key service `audience` verifies with (what its settings must hold)."""
        key = self._keys.get(audience)
        if key is None:
            key = self._keys[audience] = derive_identity_key(self._secret, audience)
        return key

    def token_for(
        self, *, audience: str, principal: str, team: str | None, scopes: Iterable[str]
    ) -> str:
        """A fresh token (new `jti`) saying `principal` of `team` holds `scopes`, for `audience`."""
        issued_at = int(self._clock())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": principal,
            "scopes": sorted(str(scope) for scope in scopes),
            "iat": issued_at,
            "exp": issued_at + self._lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        if team is not None:
            claims["team"] = team
        signing_input = f"{_HEADER}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        signature = hmac.new(
            self.key_for(audience), signing_input.encode("ascii"), hashlib.sha256
        ).digest()
        return f"{signing_input}.{_b64(signature)}"
