"""The settings every mlplane service starts from, read from `MLPLANE_*` variables.

A service subclasses `RuntimeSettings` with its own prefix
(`model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_")`) and adds its
fields. Settings validate when built, at start-up: a bad URL or, outside `dev`, a
placeholder secret fails with a `ValidationError` naming the field, before anything
connects anywhere. `load_settings(SettingsClass)` is how a service builds its own
settings: the same error, as `InvalidInput` naming each bad variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_runtime.bus.base import RetryPolicy
from mlplane_runtime.db import asyncpg_url
from mlplane_runtime.errors import InvalidInput

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
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    """Connections a process keeps open to the database (each worker of `--workers N`
    has its own pool: N times this, plus each service's LISTEN connections)."""
    database_max_overflow: int = Field(default=10, ge=0, le=1000)
    """Connections opened past the pool under load, closed when returned."""
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
    log_format: Literal["auto", "json", "text"] = "auto"
    """`json` lines, short human `text` lines, or `auto`: text on a terminal, else JSON."""
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


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """`settings_class` built from the environment, at start-up.

    Raises InvalidInput (an `MlplaneError`, so `mlplane up` / `mlplane serve` stop
    with one line) naming each bad variable with its prefix: `MLPLANE_REGISTRY_S3_BUCKET`,
    or the variable itself for a field read under an alias (`MLPLANE_ENV`); a field
    inside a JSON value is named after it (`MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS[fraud.0]`).
    A value a settings source cannot even parse (malformed JSON) is InvalidInput too.
    """
    prefix = str(settings_class.model_config.get("env_prefix") or "")
    what = prefix.removeprefix("MLPLANE_").rstrip("_").lower().replace("_", "-") or "runtime"
    try:
        return settings_class()
    except ValidationError as exc:
        problems = "; ".join(
            _problem(settings_class, prefix, error["loc"], str(error["msg"]))
            for error in exc.errors()
        )
        raise InvalidInput(f"invalid {what} settings: {problems}") from exc
    except ValueError as exc:  # a source that cannot decode a value (JSON of a mapping)
        # pydantic-settings names the field ('error parsing value for field "x" ...').
        named = re.search(r'field "([^"]+)"', str(exc))
        variable = f"{_variable(settings_class, prefix, named[1])}: " if named else ""
        raise InvalidInput(f"invalid {what} settings: {variable}{exc}") from exc


def _problem(
    settings_class: type[BaseSettings], prefix: str, loc: tuple[int | str, ...], message: str
) -> str:
    message = message.removeprefix("Value error, ")
    if not loc:  # a model validator: its message names the variables itself
        return message
    field, *inside = (str(part) for part in loc)
    where = f"[{'.'.join(inside)}]" if inside else ""
    return f"{_variable(settings_class, prefix, field)}{where}: {message}"


def _variable(settings_class: type[BaseSettings], prefix: str, field: str) -> str:
    # A field read under an alias reports the alias, which is the variable's full name.
    return f"{prefix}{field}".upper() if field in settings_class.model_fields else field.upper()
