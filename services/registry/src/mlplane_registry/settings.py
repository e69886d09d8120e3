"""The registry's own settings (prefix `MLPLANE_REGISTRY_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrySettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_", extra="ignore")

    default_page_size: int = Field(default=50, ge=1, le=1000)
    """Versions per search page when the caller does not say."""
    max_page_size: int = Field(default=500, ge=1, le=10_000)
    """The most versions one search page returns."""
