"""The one error base of mlplane. Rendered over HTTP as RFC 9457 problem+json.

Domain errors subclass `MlplaneError` in their service's `domain.py` and set
`status`, `problem_type` and `title`. Consumers sort errors by `retryable`: a
non-retryable error is bad input that no retry can fix, so the message goes to
the dead-letter queue at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE_URI = "https://mlplane.io/problems"


class MlplaneError(Exception):
    """Base of every expected error; `detail` is for people, extensions for programs."""

    status: ClassVar[int] = 500
    problem_type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = True

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """This error as an RFC 9457 problem document."""
        body: dict[str, Any] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class InvalidInput(MlplaneError):
    """Input that can never be valid as sent (bad field, unknown type)."""

    status = 422
    problem_type = f"{PROBLEM_BASE_URI}/invalid-input"
    title = "Invalid input"
    retryable = False


class NotFound(MlplaneError):
    status = 404
    problem_type = f"{PROBLEM_BASE_URI}/not-found"
    title = "Not found"
    retryable = False


class Conflict(MlplaneError):
    status = 409
    problem_type = f"{PROBLEM_BASE_URI}/conflict"
    title = "Conflict"
    retryable = False


class PreconditionFailed(MlplaneError):
    status = 412
    problem_type = f"{PROBLEM_BASE_URI}/precondition-failed"
    title = "Precondition failed"
    retryable = False


class Unavailable(MlplaneError):
    """A dependency (database, broker, storage) did not answer; worth retrying."""

    status = 503
    problem_type = f"{PROBLEM_BASE_URI}/unavailable"
    title = "Service unavailable"
    retryable = True


class Forbidden(MlplaneError):
    """The caller is known but may not do this (a scope it does not hold)."""

    status = 403
    problem_type = f"{PROBLEM_BASE_URI}/forbidden"
    title = "Forbidden"
    retryable = False
