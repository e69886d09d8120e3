"""MLflow's errors: its error codes, their HTTP statuses, and mlplane's errors as them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlplane_runtime.errors import (
    Conflict,
    InvalidInput,
    MlplaneError,
    NotFound,
    PreconditionFailed,
    Unavailable,
)

from mlplane_registry.domain import InvalidTransition, ModelAlreadyExists

RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
INVALID_STATE = "INVALID_STATE"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"

# As MLflow's server answers them (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS).
HTTP_STATUS = {
    RESOURCE_DOES_NOT_EXIST: 404,
    RESOURCE_ALREADY_EXISTS: 400,
    INVALID_PARAMETER_VALUE: 400,
    INVALID_STATE: 500,
    RESOURCE_CONFLICT: 409,
    ENDPOINT_NOT_FOUND: 404,
    NOT_IMPLEMENTED: 501,
    TEMPORARILY_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
}


class MlflowError(Exception):
    """An error in MLflow's shape: `{"error_code": ..., "message": ...}` and its status."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.error_code, 500)

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def error_of(exc: MlplaneError) -> MlflowError:
    """The MLflow error a domain error is, keeping its message."""
    if isinstance(exc, NotFound):
        code = RESOURCE_DOES_NOT_EXIST
    elif isinstance(exc, ModelAlreadyExists):
        code = RESOURCE_ALREADY_EXISTS
    elif isinstance(exc, InvalidInput):
        code = INVALID_PARAMETER_VALUE
    elif isinstance(exc, InvalidTransition):
        code = INVALID_STATE
    elif isinstance(exc, Conflict | PreconditionFailed):
        code = RESOURCE_CONFLICT
    elif isinstance(exc, Unavailable):
        code = TEMPORARILY_UNAVAILABLE
    elif exc.status == HTTP_STATUS[UNAUTHENTICATED]:
        code = UNAUTHENTICATED
    elif exc.status == HTTP_STATUS[PERMISSION_DENIED]:
        code = PERMISSION_DENIED
    else:
        code = INTERNAL_ERROR
    return MlflowError(code, exc.detail)


def validation_message(errors: Iterable[Mapping[str, Any]]) -> str:
    """One message from pydantic's errors, each naming its parameter as MLflow does."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        if error.get("type") == "missing":
            parts.append(f"Missing value for required parameter '{where}'.")
        else:
            parts.append(f"Invalid value for parameter '{where}': {error.get('msg', 'invalid')}.")
    return " ".join(parts) or "Invalid request."
