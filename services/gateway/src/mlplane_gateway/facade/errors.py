"""How the facade's error answers are written: RFC 9457 problem documents, two dialects.

Every error the facade returns, its own (502, 503, 504) or a service's re-rendered,
is `application/problem+json`. The MLflow routes add MLflow's own members,
`error_code` and `message`, because MLflow's client reads nothing else: one body
serves both readers (RFC 9457 allows extension members).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from mlplane_runtime.errors import PROBLEM_BASE_URI
from mlplane_runtime.problem import ProblemResponse, problem_response

UPSTREAM_UNREACHABLE: Final = f"{PROBLEM_BASE_URI}/upstream-unreachable"
UPSTREAM_TIMEOUT: Final = f"{PROBLEM_BASE_URI}/upstream-timeout"
UPSTREAM_UNAVAILABLE: Final = f"{PROBLEM_BASE_URI}/upstream-unavailable"
UPSTREAM_ERROR: Final = f"{PROBLEM_BASE_URI}/upstream-error"
INVALID_PATH: Final = f"{PROBLEM_BASE_URI}/invalid-path"
SERVICE_NOT_CONFIGURED: Final = f"{PROBLEM_BASE_URI}/service-not-configured"

# MLflow's error codes (mlflow/protos/databricks.proto) for the statuses we answer.
_MLFLOW_CODES: Final = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
    412: "INVALID_STATE",
    422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    502: "TEMPORARILY_UNAVAILABLE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "TEMPORARILY_UNAVAILABLE",
}


class ErrorRenderer(Protocol):
    """Writes one problem answer; `extensions` become extra members of the document."""

    def __call__(
        self,
        status: int,
        *,
        title: str | None,
        detail: str | None,
        problem_type: str,
        instance: str,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> ProblemResponse: ...


def render_problem(
    status: int,
    *,
    title: str | None,
    detail: str | None,
    problem_type: str,
    instance: str,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> ProblemResponse:
    """A plain problem document."""
    members = {
        key: value
        for key, value in (extensions or {}).items()
        if key not in ("type", "title", "status", "detail", "instance")
    }
    return problem_response(
        status,
        title=title,
        detail=detail,
        problem_type=problem_type,
        instance=instance,
        headers=headers,
        **members,
    )


def mlflow_error_code(status: int) -> str:
    """MLflow's error code for `status` (its client maps codes back to exceptions)."""
    return _MLFLOW_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")


def render_mlflow_problem(
    status: int,
    *,
    title: str | None,
    detail: str | None,
    problem_type: str,
    instance: str,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> ProblemResponse:
    """A problem document MLflow's client also understands (`error_code`, `message`)."""
    members = dict(extensions or {})
    members.setdefault("error_code", mlflow_error_code(status))
    members.setdefault("message", detail or title or "")
    return render_problem(
        status,
        title=title,
        detail=detail,
        problem_type=problem_type,
        instance=instance,
        headers=headers,
        extensions=members,
    )
