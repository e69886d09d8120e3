"""mlplane_registry.mlflow.errors: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_registry.domain import (
    InvalidName,
    InvalidTransition,
    Model,
    ModelAlreadyExists,
    ModelNotFound,
    StaleETag,
)
from mlplane_registry.mlflow import errors
from mlplane_runtime.errors import InvalidInput, MlplaneError, Unavailable

T0 = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)


def model() -> Model:
    return Model(1, "risk", "fraud", "detects fraud", {"owner": "risk"}, T0, T0, "e")


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (ModelNotFound("no model"), "RESOURCE_DOES_NOT_EXIST", 404),
        (ModelAlreadyExists("exists"), "RESOURCE_ALREADY_EXISTS", 400),
        (InvalidName("bad name"), "INVALID_PARAMETER_VALUE", 400),
        (InvalidInput("bad cursor"), "INVALID_PARAMETER_VALUE", 400),
        (InvalidTransition("no"), "INVALID_STATE", 500),
        (StaleETag("changed"), "RESOURCE_CONFLICT", 409),
        (Unavailable("db down"), "TEMPORARILY_UNAVAILABLE", 503),
        (MlplaneError("boom"), "INTERNAL_ERROR", 500),
    ],
)
def test_domain_errors_become_mlflow_errors_with_mlflows_status(
    error: MlplaneError, code: str, status: int
) -> None:
    mapped = errors.error_of(error)
    assert mapped.body() == {"error_code": code, "message": error.detail}
    assert mapped.status == status


def test_validation_errors_name_the_parameter_as_mlflow_does() -> None:
    message = errors.validation_message(
        [
            {"loc": ("name",), "type": "missing", "msg": "Field required"},
            {"loc": ("body", "max_results"), "type": "int_parsing", "msg": "not an int"},
        ]
    )
    assert "Missing value for required parameter 'name'." in message
    assert "parameter 'max_results': not an int" in message
