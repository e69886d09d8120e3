"""Settings of the MLflow-compatible API (prefix `MLPLANE_REGISTRY_MLFLOW_`)."""

from __future__ import annotations

from mlplane_contracts.types import DnsLabel
from pydantic_settings import BaseSettings, SettingsConfigDict


class MlflowApiSettings(BaseSettings):
    """Settings of the MLflow-compatible API (prefix `MLPLANE_REGISTRY_MLFLOW_`)."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_MLFLOW_", extra="ignore")

    default_team: DnsLabel = "default"
    """The team of MLflow requests that carry no `X-Mlplane-Team` header."""
