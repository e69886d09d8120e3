"""Calling a service as the gateway does, for tests: signed `X-Mlplane-Identity` tokens.

No service trusts a plain header, so a test speaks to a service's routes the way the
gateway does. `GatewayIdentity` is an httpx `Auth` that turns the test's
`X-Mlplane-Team` / `X-Mlplane-Principal` headers into a token signed with the test
identity secret (every scope unless the test names others); a request without a team
header goes as the operator (a token naming no team). A request that already carries
`X-Mlplane-Identity` is sent as it is.

The root conftest sets `MLPLANE_IDENTITY_SECRET` to `TEST_IDENTITY_SECRET`, so services
built in tests verify these tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Generator, Iterable

import httpx
from mlplane_contracts.scopes import ALL_SCOPES
from mlplane_runtime.forwarded_identity import (
    ALGORITHM,
    IDENTITY_HEADER,
    ISSUER,
    PRINCIPAL_HEADER,
    TEAM_HEADER,
    derive_identity_key,
)

TEST_IDENTITY_SECRET = "mlplane-test-identity-secret-0123456789abcdef"
TEST_PRINCIPAL = "user:test"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def signed_identity(
    audience: str,
    *,
    team: str | None,
    principal: str = TEST_PRINCIPAL,
    scopes: Iterable[str] = ALL_SCOPES,
    secret: str | bytes = TEST_IDENTITY_SECRET,
    lifetime_s: int = 30,
) -> str:
    """A forwarded identity for `audience`, as the gateway signs it (team None: the operator)."""
    raw_secret = secret.encode() if isinstance(secret, str) else secret
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": principal,
        "scopes": sorted(scopes),
        "iat": now,
        "exp": now + lifetime_s,
        "jti": uuid.uuid4().hex,
    }
    if team is not None:
        claims["team"] = team
    header = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    key = derive_identity_key(raw_secret, audience)
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class GatewayIdentity(httpx.Auth):
    """Signs each request for `audience` from its team and principal headers;
    audience None: the first segment of the request's path (`/<service>/...` on a
    platform hosting several services)."""

    def __init__(
        self,
        audience: str | None,
        *,
        scopes: Iterable[str] = ALL_SCOPES,
        secret: str | bytes = TEST_IDENTITY_SECRET,
    ) -> None:
        self.audience = audience
        self.scopes = frozenset(scopes)
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if IDENTITY_HEADER not in request.headers:
            principal = request.headers.pop(PRINCIPAL_HEADER, TEST_PRINCIPAL)
            audience = self.audience or request.url.path.strip("/").split("/", 1)[0]
            request.headers[IDENTITY_HEADER] = signed_identity(
                audience,
                team=request.headers.get(TEAM_HEADER),
                principal=principal,
                scopes=self.scopes,
                secret=self.secret,
            )
        yield request
