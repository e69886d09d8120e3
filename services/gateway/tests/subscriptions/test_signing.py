"""Delivery signatures: what receivers verify."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from mlplane_gateway.subscriptions.signing import InvalidSignature, sign, verify_signature

SECRET = "whsec-" + "x" * 32
BODY = b'{"model":"fraud"}'
T = 1_900_000_000


class TestSignature:
    def test_the_documented_construction(self) -> None:
        expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(BODY, SECRET, T) == f"t={T},v1={expected}"

    def test_a_signed_body_verifies(self) -> None:
        assert verify_signature(sign(BODY, SECRET, T), BODY, SECRET, now=T + 10) == T

    def test_a_changed_body_or_secret_does_not(self) -> None:
        header = sign(BODY, SECRET, T)
        with pytest.raises(InvalidSignature, match="does not match"):
            verify_signature(header, BODY + b" ", SECRET, now=T)
        with pytest.raises(InvalidSignature, match="does not match"):
            verify_signature(header, BODY, SECRET + "y", now=T)

    def test_a_replay_outside_the_tolerance_is_refused(self) -> None:
        header = sign(BODY, SECRET, T)
        assert verify_signature(header, BODY, SECRET, tolerance_s=300, now=T + 300) == T
        with pytest.raises(InvalidSignature, match="tolerance"):
            verify_signature(header, BODY, SECRET, tolerance_s=300, now=T + 301)
        with pytest.raises(InvalidSignature, match="tolerance"):
            verify_signature(header, BODY, SECRET, tolerance_s=300, now=T - 301)

    def test_a_changed_timestamp_breaks_the_signature(self) -> None:
        mac = sign(BODY, SECRET, T).split(",")[1]
        with pytest.raises(InvalidSignature, match="does not match"):
            verify_signature(f"t={T + 5},{mac}", BODY, SECRET, now=T)

    def test_during_rotation_either_secret_verifies(self) -> None:
        header = sign(BODY, ["old-secret", SECRET], T)
        assert header.count("v1=") == 2
        assert verify_signature(header, BODY, SECRET, now=T) == T
        assert verify_signature(header, BODY, "old-secret", now=T) == T

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "garbage",
            f"t={T}",
            "v1=abc",
            "t=x,v1=ab",
            f"t={T},t={T},v1=ab",
            f"t={T},v1=é",
        ],
    )
    def test_malformed_headers_are_refused(self, header: str | None) -> None:
        with pytest.raises(InvalidSignature):
            verify_signature(header, BODY, SECRET, now=T)
