"""The caller's identity, signed by the gateway for the one service a request goes to.

Each service verifies it with `mlplane_runtime.forwarded_identity` (see there for
the claims and why HS256 with a key derived per service). The gateway holds the
identity secret and derives each service's key; a service holds only its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Set
from typing import Protocol

from mlplane_runtime.forwarded_identity import (
    MAX_LIFETIME_S,
    derive_identity_key,
    sign_forwarded_identity,
)

DEFAULT_LIFETIME_S = 30


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
        return sign_forwarded_identity(
            self.key_for(audience),
            audience=audience,
            principal=principal,
            team=team,
            scopes=scopes,
            lifetime_s=self._lifetime_s,
            now=self._clock(),
        )
