"""OIDC bearer tokens: the issuer's signing keys (JWKS) and the checks on each JWT.

Only RS256 and ES256 are accepted, whatever the token's header says: `none` and
HMAC algorithms are refused before any key is looked at, so a public key can
never be used as an HMAC secret. `iss`, `aud` and `exp` are required and
checked (and `nbf` unless `MLPLANE_GATEWAY_OIDC_REQUIRE_NBF` is off), with a
small leeway for clock skew.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK, PyJWKSet
from mlplane_contracts.types import DNS_LABEL_PATTERN

from mlplane_gateway.auth.principals import Principal, PrincipalKind, parse_scopes
from mlplane_gateway.errors import Unauthenticated

_log = logging.getLogger("mlplane.gateway")
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


class SigningKeys(Protocol):
    async def key(self, kid: str | None) -> PyJWK | None:
        """The issuer's key with id `kid` (the only key when None and there is one)."""
        ...

    async def aclose(self) -> None: ...


def _pick(keys: Mapping[str, PyJWK], kid: str | None) -> PyJWK | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _index(jwks: PyJWKSet) -> dict[str, PyJWK]:
    return {key.key_id or "": key for key in jwks.keys}


class InlineSigningKeys:
    """A JWKS given in the settings."""

    def __init__(self, jwks_json: str) -> None:
        """Raises ValueError when the JSON is not a usable JWKS."""
        try:
            self._keys = _index(PyJWKSet.from_json(jwks_json))
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise ValueError(f"MLPLANE_GATEWAY_OIDC_JWKS_JSON is not a usable JWKS: {exc}") from exc

    async def key(self, kid: str | None) -> PyJWK | None:
        return _pick(self._keys, kid)

    async def aclose(self) -> None:
        return None


class RemoteSigningKeys:
    """The issuer's published JWKS, cached for `cache_s` and refetched on an unknown `kid`
    (at most once per `cooldown_s`, so junk `kid`s cannot make us hammer the issuer)."""

    def __init__(
        self,
        url: str,
        *,
        cache_s: float,
        cooldown_s: float,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_s = cache_s
        self._cooldown_s = cooldown_s
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK | None:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._cache_s
        if stale or (
            _pick(self._keys, kid) is None
            and self._fetched_at is not None
            and now - self._fetched_at >= self._cooldown_s
        ):
            await self._refresh(self._fetched_at)
        return _pick(self._keys, kid)

    async def _refresh(self, seen: float | None) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while this one waited
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                keys = _index(PyJWKSet.from_dict(response.json()))
            except (httpx.HTTPError, jwt.PyJWTError, ValueError, KeyError) as exc:
                # Keep the keys we had: an issuer hiccup must not log everyone out.
                _log.warning("could not fetch the OIDC JWKS from %s: %s", self._url, exc)
                if self._fetched_at is None:
                    self._fetched_at = self._clock()
                return
            self._keys = keys
            self._fetched_at = self._clock()

    async def aclose(self) -> None:
        await self._client.aclose()


class OidcVerifier:
    """Turns a bearer JWT into a principal, or raises Unauthenticated saying why."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...],
        team_claim: str,
        scopes_claim: str,
        subject_claim: str,
        leeway_s: int,
        require_nbf: bool,
    ) -> None:
        self.keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = algorithms
        self._team_claim = team_claim
        self._scopes_claim = scopes_claim
        self._subject_claim = subject_claim
        self._leeway_s = leeway_s
        required = ["exp", "iss", "aud"] + (["nbf"] if require_nbf else [])
        self._options: Any = {"require": required}

    async def principal(self, token: str) -> Principal:
        """Raises Unauthenticated for a token that is malformed, signed by an unknown key
        or with another algorithm, of another issuer or audience, expired or not yet valid."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are not accepted")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise Unauthenticated("the token is signed by a key the issuer does not publish")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim!r} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            # Bad signature, or a key that does not fit the algorithm.
            raise Unauthenticated("the token's signature is not valid") from None
        return self._principal_of(claims)

    def _principal_of(self, claims: dict[str, Any]) -> Principal:
        team = claims.get(self._team_claim)
        if not isinstance(team, str) or _DNS_LABEL.fullmatch(team) is None:
            raise Unauthenticated(f"the token's {self._team_claim!r} claim names no team")
        subject = claims.get(self._subject_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(f"the token has no {self._subject_claim!r} claim")
        raw_scopes = claims.get(self._scopes_claim, [])
        if isinstance(raw_scopes, str):
            raw_scopes = raw_scopes.split()
        if not isinstance(raw_scopes, list):
            raw_scopes = []
        return Principal(
            kind=PrincipalKind.OIDC,
            id=f"user:{subject}"[:256],
            team=team,
            scopes=parse_scopes(s for s in raw_scopes if isinstance(s, str)),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def signing_keys(jwks_url: str | None, jwks_json: str | None, **remote: Any) -> SigningKeys:
    """The configured JWKS source: inline JSON, or a URL fetched on demand."""
    if jwks_json is not None:
        json.loads(jwks_json)  # a plain JSON error names the problem best
        return InlineSigningKeys(jwks_json)
    if jwks_url is None:
        raise ValueError("no JWKS configured")
    return RemoteSigningKeys(jwks_url, **remote)
