"""mlplane_registry.mlflow.names: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_registry.domain import (
    Model,
)
from mlplane_registry.mlflow import errors, names

T0 = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)


def model() -> Model:
    return Model(1, "risk", "fraud", "detects fraud", {"owner": "risk"}, T0, T0, "e")


@pytest.mark.parametrize("name", ["fraud", "fraud-v2", "a", "x" * 63])
def test_dns_label_model_names_are_accepted(name: str) -> None:
    assert names.check_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("Fraud Model", "fraud-model"), ("fraud_v2", "fraud-v2"), ("-x-", "x"), ("x" * 64, "x" * 63)],
)
def test_other_model_names_are_refused_with_a_suggestion(name: str, suggestion: str) -> None:
    with pytest.raises(errors.MlflowError) as refused:
        names.check_model_name(name)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"'{name}'" in refused.value.message
    assert "DNS-1123" in refused.value.message
    assert f"'{suggestion}'" in refused.value.message


def test_aliases_must_be_dns_labels() -> None:
    assert names.check_alias("champion") == "champion"
    with pytest.raises(errors.MlflowError, match="DNS-1123"):
        names.check_alias("Champion")


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", "", "²", str(2**31)])
def test_versions_are_positive_integers(text: str) -> None:
    with pytest.raises(errors.MlflowError, match="positive integer"):
        names.parse_version(text)
    assert names.parse_version(" 7 ") == 7
