"""Verification of the identity the gateway forwards to services.

Tokens here are built with the standard library (the runtime does not depend on
a JWT library); the gateway's tests check tokens PyJWT signs against the same
verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from mlplane_runtime.forwarded_identity import (
    ISSUER,
    InvalidForwardedIdentity,
    derive_identity_key,
    sign_forwarded_identity,
    verify_forwarded_identity,
)

SECRET = b"s" * 32
NOW = 1_900_000_000
KEY = derive_identity_key(SECRET, "registry")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(
    claims: dict[str, Any] | None = None,
    *,
    header: dict[str, Any] | None = None,
    key: bytes = KEY,
    **overrides: Any,
) -> str:
    body = claims or {
        "iss": ISSUER,
        "aud": "registry",
        "sub": "apikey:abc",
        "team": "fraud",
        "scopes": ["models:read"],
        "iat": NOW,
        "exp": NOW + 30,
        "jti": "j1",
    }
    body = {**body, **overrides}
    signing_input = (
        b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(body).encode())
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def verify(value: str, now: float = NOW + 1) -> Any:
    return verify_forwarded_identity(value, audience="registry", key=KEY, now=now)


class TestVerifyForwardedIdentity:
    def test_a_valid_token_gives_the_callers_identity(self) -> None:
        identity = verify(token())
        assert identity.principal == "apikey:abc"
        assert identity.team == "fraud"
        assert identity.scopes == frozenset({"models:read"})
        assert identity.has("models:read")
        assert not identity.has("models:write")
        assert (identity.issued_at, identity.expires_at, identity.token_id) == (
            NOW,
            NOW + 30,
            "j1",
        )

    def test_the_operator_has_no_team(self) -> None:
        assert verify(token(team=None)).team is None

    def test_a_token_for_another_service_is_refused(self) -> None:
        other = derive_identity_key(SECRET, "scanner")
        assert other != KEY
        with pytest.raises(InvalidForwardedIdentity, match="signature"):
            verify(token(key=other, aud="scanner"))
        # Signed with the right key but naming another audience.
        with pytest.raises(InvalidForwardedIdentity, match="another service"):
            verify(token(aud="scanner"))

    def test_a_tampered_token_is_refused(self) -> None:
        header, _claims, signature = token().split(".")
        forged = b64(json.dumps({"iss": ISSUER, "aud": "registry", "sub": "admin"}).encode())
        with pytest.raises(InvalidForwardedIdentity, match="signature"):
            verify(f"{header}.{forged}.{signature}")

    def test_junk_in_the_signature_is_not_ignored(self) -> None:
        header, claims, signature = token().split(".")
        with pytest.raises(InvalidForwardedIdentity, match="base64url"):
            verify(f"{header}.{claims}.{signature[:5]}!{signature[5:]}")

    @pytest.mark.parametrize(
        "header",
        [{"alg": "none"}, {"alg": "HS512"}, {"alg": "RS256"}, {"alg": "HS256", "crit": ["x"]}],
    )
    def test_only_hs256_is_accepted(self, header: dict[str, Any]) -> None:
        with pytest.raises(InvalidForwardedIdentity, match="HS256"):
            verify(token(header=header))

    def test_expiry_is_enforced_with_a_small_leeway(self) -> None:
        assert verify(token(), now=NOW + 34).principal == "apikey:abc"
        with pytest.raises(InvalidForwardedIdentity, match="expired"):
            verify(token(), now=NOW + 35)

    def test_a_token_issued_in_the_future_is_refused(self) -> None:
        with pytest.raises(InvalidForwardedIdentity, match="future"):
            verify(token(), now=NOW - 10)

    def test_a_long_lived_token_is_refused(self) -> None:
        with pytest.raises(InvalidForwardedIdentity, match="at most 60"):
            verify(token(exp=NOW + 61))

    @pytest.mark.parametrize(
        ("claim", "value", "message"),
        [
            ("iss", "someone-else", "not issued"),
            ("sub", "", "no principal"),
            ("team", 7, "team"),
            ("scopes", "models:read", "scopes"),
            ("jti", None, "jti"),
            ("iat", True, "integer"),
            ("exp", "soon", "integer"),
        ],
    )
    def test_bad_claims_are_named(self, claim: str, value: Any, message: str) -> None:
        with pytest.raises(InvalidForwardedIdentity, match=message):
            verify(token(**{claim: value}))

    @pytest.mark.parametrize("value", ["", "a.b", "a.b.c.d", "x" * 9000, "e30.e30.e30"])
    def test_malformed_tokens_are_refused(self, value: str) -> None:
        with pytest.raises(InvalidForwardedIdentity):
            verify(value)

    def test_the_error_is_a_401_problem(self) -> None:
        with pytest.raises(InvalidForwardedIdentity) as caught:
            verify("a.b")
        assert caught.value.status == 401
        assert caught.value.problem()["type"].endswith("/invalid-forwarded-identity")


class TestDeriveIdentityKey:
    def test_keys_differ_per_service_and_secret(self) -> None:
        keys = {
            derive_identity_key(SECRET, "registry"),
            derive_identity_key(SECRET, "scanner"),
            derive_identity_key(b"t" * 32, "registry"),
        }
        assert len(keys) == 3
        assert derive_identity_key(SECRET, "registry") == KEY

    def test_empty_inputs_are_refused(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            derive_identity_key(b"", "registry")
        with pytest.raises(ValueError, match="empty"):
            derive_identity_key(SECRET, "")


class TestSignForwardedIdentity:
    def test_what_it_signs_verifies_for_its_audience_only(self) -> None:
        signed = sign_forwarded_identity(
            KEY,
            audience="registry",
            principal="service:deployer",
            team="acme",
            scopes=["models:read"],
            lifetime_s=30,
            now=NOW,
        )
        identity = verify_forwarded_identity(signed, audience="registry", key=KEY, now=NOW + 29)
        assert (identity.principal, identity.team, identity.scopes) == (
            "service:deployer",
            "acme",
            frozenset({"models:read"}),
        )
        assert identity.expires_at - identity.issued_at == 30
        with pytest.raises(InvalidForwardedIdentity):
            verify_forwarded_identity(signed, audience="scanner", key=KEY, now=NOW)

    def test_the_operator_token_names_no_team_and_each_token_its_own_jti(self) -> None:
        first, second = (
            sign_forwarded_identity(
                KEY, audience="registry", principal="op", team=None, scopes=(), lifetime_s=5
            )
            for _ in range(2)
        )
        one = verify_forwarded_identity(first, audience="registry", key=KEY)
        two = verify_forwarded_identity(second, audience="registry", key=KEY)
        assert one.team is None
        assert one.token_id != two.token_id

    @pytest.mark.parametrize("lifetime_s", [0, 61])
    def test_a_lifetime_the_verifier_would_refuse_is_not_signed(self, lifetime_s: int) -> None:
        with pytest.raises(ValueError, match="lifetime_s"):
            sign_forwarded_identity(
                KEY, audience="registry", principal="p", team="t", scopes=(), lifetime_s=lifetime_s
            )
