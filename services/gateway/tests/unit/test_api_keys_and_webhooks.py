"""API key format and hashes; webhook signatures and derived secrets."""

from __future__ import annotations

import hashlib
import hmac

from mlplane_gateway.ingress.webhooks import (
    derive_secret,
    github_signature,
    github_signature_valid,
    gitlab_token_valid,
)
from mlplane_gateway.keys.domain import hash_key, key_matches, new_key, new_key_id, parse_key

PEPPER = b"p" * 32


class TestApiKeys:
    def test_a_new_key_parses_back_to_its_id(self) -> None:
        key_id = new_key_id()
        key = new_key(key_id)
        presented = parse_key(key)
        assert presented is not None
        assert presented.key_id == key_id
        assert len(key) == len("mlp_") + 8 + 1 + 43

    def test_keys_not_shaped_like_ours_do_not_parse(self) -> None:
        for token in ("mlp_short_x", "mlp_ABCDEFGH_" + "a" * 43, "xyz", "mlp_abcdefgh_" + "a" * 42):
            assert parse_key(token) is None

    def test_the_hash_is_keyed_by_the_pepper(self) -> None:
        key = new_key(new_key_id())
        assert hash_key(PEPPER, key) != hash_key(b"q" * 32, key)
        assert hash_key(PEPPER, key) != hashlib.sha256(key.encode()).digest()

    def test_only_the_same_key_matches(self) -> None:
        key = new_key("abcd1234")
        other = new_key("abcd1234")
        stored = hash_key(PEPPER, key)
        presented, wrong = parse_key(key), parse_key(other)
        assert presented is not None
        assert wrong is not None
        assert key_matches(PEPPER, presented, stored)
        assert not key_matches(PEPPER, wrong, stored)


class TestWebhookSignatures:
    def test_github_signature_is_hmac_sha256_of_the_raw_body(self) -> None:
        body = b'{"action":"completed"}'
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert github_signature("s3cret", body) == f"sha256={expected}"
        assert github_signature_valid("s3cret", body, f"sha256={expected}")

    def test_other_bodies_secrets_and_shapes_are_invalid(self) -> None:
        body = b"{}"
        good = github_signature("s3cret", body)
        assert not github_signature_valid("s3cret", body + b" ", good)
        assert not github_signature_valid("other", body, good)
        assert not github_signature_valid("s3cret", body, None)
        assert not github_signature_valid("s3cret", body, good.removeprefix("sha256="))
        assert not github_signature_valid("s3cret", body, good.upper())

    def test_gitlab_token_must_equal_the_secret(self) -> None:
        assert gitlab_token_valid("whsec_x", "whsec_x")
        assert not gitlab_token_valid("whsec_x", "whsec_y")
        assert not gitlab_token_valid("whsec_x", None)

    def test_derived_secrets_differ_by_team_and_nonce_and_are_stable(self) -> None:
        secret = derive_secret(PEPPER, "risk", "n1")
        assert secret == derive_secret(PEPPER, "risk", "n1")
        assert secret.startswith("whsec_")
        assert (
            len({secret, derive_secret(PEPPER, "fraud", "n1"), derive_secret(PEPPER, "risk", "n2")})
            == 3
        )
        assert derive_secret(b"q" * 32, "risk", "n1") != secret
