"""The caller's identity as the gateway forwards it to a service, and its verification.

The gateway authenticates every public request (API key or OIDC token) and calls
a service with header `X-Mlplane-Identity: <JWT>`: a compact JWS, HS256, claims
`iss` = `mlplane-gateway`, `aud` = the service's name, `sub` = the principal id,
`team` (absent for the operator, who acts for every team), `scopes`, `iat`,
`exp` (at most 60 s after `iat`) and `jti`.

Why HS256 with a key per service rather than EdDSA/ES256:

- Each service's key is derived from the gateway's identity secret and the
  service's name (`derive_identity_key`). A service holds only its own key, so a
  compromised service can mint tokens for nobody but itself: the property a key
  pair would give, without a public-key library in every service.
- Verification here needs only the standard library (`hmac`, `hashlib`); the
  runtime, which every service installs, gains no dependency, and an HMAC check
  costs microseconds on every proxied request.
- The algorithm is fixed: a token whose header names anything but HS256 is
  refused before its signature is looked at (no `alg` confusion, no `none`).

Tokens are short-lived and bound to one audience; `jti` is for logs and audit, not
replay detection (a replay inside 60 s by someone who can read the gateway's
internal traffic gains nothing they could not already do).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError

IDENTITY_HEADER: Final = "X-Mlplane-Identity"
TEAM_HEADER: Final = "X-Mlplane-Team"
PRINCIPAL_HEADER: Final = "X-Mlplane-Principal"
ISSUER: Final = "mlplane-gateway"
ALGORITHM: Final = "HS256"
MAX_LIFETIME_S: Final = 60
DEFAULT_LEEWAY_S: Final = 5
"""Clock skew tolerated between the gateway and the service."""

_KEY_CONTEXT = b"mlplane-forwarded-identity\x00"
_MAX_TOKEN_LENGTH = 8192
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class InvalidForwardedIdentity(MlplaneError):
    """The forwarded identity is missing, malformed, forged, expired or for another service."""

    status = 401
    problem_type = f"{PROBLEM_BASE_URI}/invalid-forwarded-identity"
    title = "Invalid forwarded identity"
    retryable = False


@dataclass(frozen=True, slots=True)
class ForwardedIdentity:
    """Who called the gateway, as the gateway vouches for it."""

    principal: str
    team: str | None
    """None only for the platform operator, who acts for every team."""
    scopes: frozenset[str]
    audience: str
    issued_at: int
    expires_at: int
    token_id: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def derive_identity_key(secret: bytes, audience: str) -> bytes:
    """The key that signs and verifies identities for service `audience`.

    HMAC-SHA256 of the service's name under the gateway's identity secret: the
    gateway derives it per call; each service is configured with its own only.
    Raises ValueError for an empty secret or audience.
    """
    if not secret or not audience:
        raise ValueError("the identity secret and the audience must not be empty")
    return hmac.new(secret, _KEY_CONTEXT + audience.encode(), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# Written here rather than by a JWT library, whose per-call key checks were most of the
# signing cost on every forwarded call; the header never changes.
_HEADER: Final = _b64encode(
    json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode()
)


def sign_forwarded_identity(
    key: bytes,
    *,
    audience: str,
    principal: str,
    team: str | None,
    scopes: Iterable[str],
    lifetime_s: int,
    now: float | None = None,
) -> str:
    """A fresh identity token (new `jti`) saying `principal` of `team` (None: the
    operator) holds `scopes`, for service `audience`, signed with `key` (that service's,
    `derive_identity_key(secret, audience)`), valid `lifetime_s` seconds from `now`
    (default: the current Unix time).

    What the gateway signs for every forwarded call, and what a service calling another
    one (the deployer asking the scanner for a manifest scan) signs with the key it was
    given for it. Raises ValueError for a lifetime outside 1..MAX_LIFETIME_S.
    """
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise ValueError(f"lifetime_s must be within 1..{MAX_LIFETIME_S}")
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": principal,
        "scopes": sorted(str(scope) for scope in scopes),
        "iat": issued_at,
        "exp": issued_at + lifetime_s,
        "jti": uuid.uuid4().hex,
    }
    if team is not None:
        claims["team"] = team
    signing_input = f"{_HEADER}.{_b64encode(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64encode(signature)}"


def verify_forwarded_identity(
    token: str,
    *,
    audience: str,
    key: bytes,
    now: float | None = None,
    leeway_s: int = DEFAULT_LEEWAY_S,
) -> ForwardedIdentity:
    """The identity `token` carries, once its signature, issuer, audience and times hold.

    `key` is this service's key (`derive_identity_key(secret, audience)`); `now`
    defaults to the current Unix time. Raises InvalidForwardedIdentity (401)
    saying what is wrong; the message never includes the token.
    """
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidForwardedIdentity("no forwarded identity, or one too long to be ours")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidForwardedIdentity("the forwarded identity is not a compact JWS")
    encoded_header, encoded_claims, encoded_signature = parts
    header = _json_object(encoded_header, "header")
    # Checked before the signature, so no other algorithm is ever attempted.
    if header.get("alg") != ALGORITHM or "crit" in header:
        raise InvalidForwardedIdentity(f"the forwarded identity must be signed with {ALGORITHM}")
    expected = hmac.new(
        key, f"{encoded_header}.{encoded_claims}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, _b64decode(encoded_signature, "signature")):
        raise InvalidForwardedIdentity("the forwarded identity's signature does not match")
    return _identity(_json_object(encoded_claims, "claims"), audience, now, leeway_s)


def is_current(
    identity: ForwardedIdentity, now: float | None = None, leeway_s: int = DEFAULT_LEEWAY_S
) -> bool:
    """True while `identity` is within its lifetime, as `verify_forwarded_identity` checks
    it (`now` defaults to the current Unix time)."""
    moment = time.time() if now is None else now
    return identity.issued_at <= moment + leeway_s and moment < identity.expires_at + leeway_s


def _identity(
    claims: dict[str, Any], audience: str, now: float | None, leeway_s: int
) -> ForwardedIdentity:
    if claims.get("iss") != ISSUER:
        raise InvalidForwardedIdentity(f"the forwarded identity was not issued by {ISSUER}")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and aud == [audience])):
        raise InvalidForwardedIdentity("the forwarded identity is meant for another service")
    issued_at, expires_at = _integer(claims.get("iat")), _integer(claims.get("exp"))
    if issued_at is None or expires_at is None:
        raise InvalidForwardedIdentity("the forwarded identity lacks integer iat and exp")
    if not 0 < expires_at - issued_at <= MAX_LIFETIME_S:
        raise InvalidForwardedIdentity(
            f"the forwarded identity must live at most {MAX_LIFETIME_S} s"
        )
    moment = time.time() if now is None else now
    if moment >= expires_at + leeway_s:
        raise InvalidForwardedIdentity("the forwarded identity has expired")
    if issued_at > moment + leeway_s:
        raise InvalidForwardedIdentity("the forwarded identity is issued in the future")
    subject, team, token_id = claims.get("sub"), claims.get("team"), claims.get("jti")
    scopes = claims.get("scopes", [])
    if not isinstance(subject, str) or not subject:
        raise InvalidForwardedIdentity("the forwarded identity names no principal")
    if team is not None and (not isinstance(team, str) or not team):
        raise InvalidForwardedIdentity("the forwarded identity's team is not a name")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidForwardedIdentity("the forwarded identity's scopes are not a list of names")
    if not isinstance(token_id, str) or not token_id:
        raise InvalidForwardedIdentity("the forwarded identity has no jti")
    return ForwardedIdentity(
        principal=subject,
        team=team,
        scopes=frozenset(scopes),
        audience=audience,
        issued_at=issued_at,
        expires_at=expires_at,
        token_id=token_id,
    )


def _integer(value: object) -> int | None:
    # bool is an int to Python, not to JSON's producers.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _b64decode(segment: str, what: str) -> bytes:
    # base64url without padding, as JWS writes it; anything else is refused, not repaired.
    if not _BASE64URL.fullmatch(segment):
        raise InvalidForwardedIdentity(f"the forwarded identity's {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidForwardedIdentity(
            f"the forwarded identity's {what} is not base64url"
        ) from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    raw = _b64decode(segment, what)
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidForwardedIdentity(f"the forwarded identity's {what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidForwardedIdentity(f"the forwarded identity's {what} is not a JSON object")
    return value
