"""The settings every mlplane service starts from, read from `MLPLANE_*` variables.

A service subclasses `RuntimeSettings` with its own prefix
(`model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_")`) and adds its
fields. Settings validate when built, at start-up: a bad URL or, outside `dev`, a
placeholder secret fails with a `ValidationError` naming the field, before anything
connects anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_runtime.bus.base import RetryPolicy
from mlplane_runtime.db import asyncpg_url

Environment = Literal["dev", "test", "prod"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# Passwords that only ever appear in examples and templates. Outside dev they mean
# someone forgot to set the real secret, so start-up stops instead of running with it.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "changeit",
        "placeholder",
        "secret",
        "password",
        "example",
        "xxx",
        "todo",
    }
)


def _refuse_placeholder_password(url: str, info: ValidationInfo) -> None:
    if info.data.get("env", "dev") == "dev":
        return
    password = urlsplit(url).password
    if password is not None and unquote(password).lower() in PLACEHOLDER_SECRETS:
        raise ValueError(
            f"the password in {info.field_name} is a placeholder ({password!r}); "
            "set a real secret (placeholders are allowed only when env is dev)"
        )


def _require_scheme(url: str, schemes: tuple[str, ...], field_name: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in schemes:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{field_name} must be an {allowed} URL, got scheme {scheme!r}")
    if not urlsplit(url).hostname:
        raise ValueError(f"{field_name} has no host")


class RuntimeSettings(BaseSettings):
    """What every service needs: where its database, bus and telemetry are, and how
    it retries. `None` URLs mean the embedded defaults (pgserver, in-process bus)."""

    model_config = SettingsConfigDict(
        env_prefix="MLPLANE_",
        extra="ignore",
        validate_default=True,
    )

    # Declared first: the URL validators read it to decide on placeholder secrets.
    env: Environment = "dev"
    database_url: str | None = None
    amqp_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".data")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """A connection whose request headers are not complete this long after it opened (or
    after the request's first byte) is closed (408)."""
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """A request body that sends nothing this long while the service waits is dropped."""
    http_keep_alive_timeout_s: int = Field(default=5, ge=1, le=300)
    """An idle keep-alive connection is closed after this long."""
    http_max_connections: int = Field(default=2048, ge=1)
    """Open connections past this are answered 503 and closed at once."""
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Request line and headers past this size are answered 431."""
    otlp_endpoint: str | None = None
    log_level: LogLevel = "INFO"
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = Field(default=0.5, gt=0)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)

    @field_validator("database_url")
    @classmethod
    def _postgres_via_asyncpg(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _refuse_placeholder_password(value, info)
        return asyncpg_url(value)

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _require_scheme(value, ("amqp", "amqps"), "amqp_url")
        _refuse_placeholder_password(value, info)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _require_scheme(value, ("redis", "rediss"), "redis_url")
        _refuse_placeholder_password(value, info)
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _require_scheme(value, ("http", "https"), "otlp_endpoint")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def retry_policy(self) -> RetryPolicy:
        """The bus retry policy these settings describe."""
        return RetryPolicy(
            max_attempts=self.retry_max_attempts, base_delay_s=self.retry_base_delay_s
        )
