"""Signatures of webhook deliveries, so a receiver knows a delivery came from mlplane.

Every delivery carries::

    X-Mlplane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

where the HMAC is keyed with the subscription's secret (shown once, when the
subscription is created) over the bytes `<t>.<raw body>`: the timestamp as
decimal ASCII, a dot, then the request body exactly as received. To verify, a
receiver recomputes the HMAC over the body it read before parsing it, compares
it in constant time with each `v1` value (several appear while a secret is being
rotated), and refuses a `t` further than its tolerance (5 minutes by default)
from its own clock, so a captured delivery cannot be replayed later. The
CloudEvent `id` (header `ce-id`, or `id` in a structured body) identifies the
event: deliveries are at least once, so receivers drop ids they have seen.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Final

from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError

SIGNATURE_HEADER: Final = "X-Mlplane-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300


class InvalidSignature(MlplaneError):
    """The delivery's signature is missing, malformed, wrong or too old."""

    status = 401
    problem_type = f"{PROBLEM_BASE_URI}/invalid-signature"
    title = "Invalid signature"
    retryable = False


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: str | Iterable[str], timestamp: int) -> str:
    """The header value for `body` sent at `timestamp`; one `v1` per secret (rotation)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed")
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={_mac(key, timestamp, body)}" for key in keys)])


def verify_signature(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """The delivery's timestamp, when `header` signs `body` with `secret` within tolerance.

    Raises InvalidSignature saying why: no header, malformed, the timestamp
    outside `tolerance_s` of `now` (default: the current time), or no `v1`
    value matching.
    """
    if not header:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise InvalidSignature(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                raise InvalidSignature(f"malformed {SIGNATURE_HEADER} timestamp")
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(f"{SIGNATURE_HEADER} needs t= and v1=")
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > tolerance_s:
        raise InvalidSignature("the signature's timestamp is outside the tolerance (replay?)")
    expected = _mac(secret, timestamp, body)
    # Every candidate is compared, whatever matched before: no early exit to time.
    matched = False
    for candidate in candidates:
        value = candidate.strip().lower()
        matched |= value.isascii() and hmac.compare_digest(expected, value)
    if not matched:
        raise InvalidSignature("the signature does not match the body")
    return timestamp
