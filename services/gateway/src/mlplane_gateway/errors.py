"""The gateway's domain errors. Those that need response headers carry them.

`Unauthenticated` (401) names the challenge for `WWW-Authenticate`, `RateLimited`
(429) the seconds for `Retry-After`; the gateway's routes render them with those
headers (the platform's generic handler renders only the body).
"""

from __future__ import annotations

from typing import Any, ClassVar

from mlplane_runtime.errors import (
    PROBLEM_BASE_URI,
    Conflict,
    InvalidInput,
    MlplaneError,
    NotFound,
    Unavailable,
)

REALM = "mlplane"


class GatewayError(MlplaneError):
    """An error whose HTTP answer also needs headers."""

    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **ext: Any) -> None:
        super().__init__(detail, **ext)
        self.headers = headers or {}


class Unauthenticated(GatewayError):
    """No credential, or one that is not valid now (unknown, wrong, expired, revoked)."""

    status = 401
    problem_type = f"{PROBLEM_BASE_URI}/unauthenticated"
    title = "Unauthenticated"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        # RFC 6750 §3: no error code when the request carried no credential at all.
        challenge = f'Bearer realm="{REALM}"'
        if error is not None:
            challenge += f', error="{error}", error_description="{_quoted(detail)}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(GatewayError):
    """A valid principal without the scope, or acting for a team it is not in."""

    status = 403
    problem_type = f"{PROBLEM_BASE_URI}/forbidden"
    title = "Forbidden"

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        headers = {}
        if scope is not None:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
            )
        super().__init__(detail, headers=headers, **({"scope": scope} if scope else {}))


class RateLimited(GatewayError):
    status = 429
    problem_type = f"{PROBLEM_BASE_URI}/rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(
            detail, headers={"Retry-After": str(retry_after_s)}, retry_after_s=retry_after_s
        )


class RateLimiterUnavailable(Unavailable):
    """The rate-limit store did not answer and the gateway is set to fail closed."""

    title = "Rate limiter unavailable"


class MalformedRequest(InvalidInput):
    """A body or header that cannot be parsed at all (not JSON, not a CloudEvent)."""

    status = 400
    problem_type = f"{PROBLEM_BASE_URI}/malformed-request"
    title = "Malformed request"


class PayloadTooLarge(InvalidInput):
    status = 413
    problem_type = f"{PROBLEM_BASE_URI}/payload-too-large"
    title = "Payload too large"


class ApiKeyNotFound(NotFound):
    pass


class WebhookRefused(InvalidInput):
    """A signed webhook whose payload cannot become a CI run (says what to change)."""


class EventNotPublishable(InvalidInput):
    """An event type callers may not publish through the gateway."""


class DuplicateKeyId(Conflict):
    """Two keys drew the same id prefix (retried by the caller of the store)."""


def _quoted(text: str) -> str:
    # A quoted-string may not hold '"' or '\'; descriptions are ours, keep them plain.
    return text.replace("\\", "").replace('"', "'")


class BadSignature(GatewayError):
    """A webhook whose signature or token does not match its team's secret (or the
    team has none: the same answer, so a team's existence does not leak)."""

    status = 401
    problem_type = f"{PROBLEM_BASE_URI}/bad-signature"
    title = "Bad webhook signature"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'HMAC realm="{REALM}-webhooks"'})
