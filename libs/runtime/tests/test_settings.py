"""RuntimeSettings: defaults, URL normalisation, fail-fast validation, service subclasses."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import RuntimeSettings, load_settings
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the process environment: start each test from a clean one."""
    import os

    for name in list(os.environ):
        if name.startswith("MLPLANE_") and not name.startswith("MLPLANE_TEST_"):
            monkeypatch.delenv(name)


def _error_fields(exc: ValidationError) -> set[str]:
    return {str(err["loc"][0]) for err in exc.errors() if err["loc"]}


class TestDefaults:
    def test_defaults_mean_embedded_services_on_localhost(self) -> None:
        settings = RuntimeSettings()
        assert settings.env == "dev"
        assert settings.database_url is None
        assert settings.amqp_url is None
        assert settings.redis_url is None
        assert settings.data_dir == Path(".data")
        assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
        assert settings.retry_max_attempts == 5
        assert settings.retry_base_delay_s == 0.5
        assert settings.relay_batch_size == 500

    def test_retry_policy_follows_the_settings(self) -> None:
        policy = RuntimeSettings(retry_max_attempts=3, retry_base_delay_s=0.1).retry_policy()
        assert (policy.max_attempts, policy.base_delay_s) == (3, 0.1)


class TestEnvironmentVariables:
    def test_fields_are_read_from_mlplane_prefixed_variables(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_ENV", "test")
        monkeypatch.setenv("MLPLANE_DATABASE_URL", "postgresql://app:s3cr3t@db:5432/mlplane")
        monkeypatch.setenv("MLPLANE_AMQP_URL", "amqps://app:s3cr3t@mq:5671/")
        monkeypatch.setenv("MLPLANE_HTTP_PORT", "9000")
        monkeypatch.setenv("MLPLANE_LOG_LEVEL", "debug")
        settings = RuntimeSettings()
        assert settings.env == "test"
        assert settings.database_url == "postgresql+asyncpg://app:s3cr3t@db:5432/mlplane"
        assert settings.amqp_url == "amqps://app:s3cr3t@mq:5671/"
        assert settings.http_port == 9000
        assert settings.log_level == "DEBUG"

    def test_service_subclass_reads_its_own_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        class RegistrySettings(RuntimeSettings):
            model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_")
            artifact_bucket: str = "models"

        monkeypatch.setenv("MLPLANE_REGISTRY_DATABASE_URL", "postgres://r@db/mlplane")
        monkeypatch.setenv("MLPLANE_REGISTRY_ARTIFACT_BUCKET", "registry-artifacts")
        monkeypatch.setenv("MLPLANE_REGISTRY_HTTP_PORT", "8081")
        settings = RegistrySettings()
        assert settings.database_url == "postgresql+asyncpg://r@db/mlplane"
        assert settings.artifact_bucket == "registry-artifacts"
        assert settings.http_port == 8081

    def test_service_subclass_keeps_the_base_validation(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class BuilderSettings(RuntimeSettings):
            model_config = SettingsConfigDict(env_prefix="MLPLANE_BUILDER_")

        monkeypatch.setenv("MLPLANE_BUILDER_AMQP_URL", "http://mq:5672/")
        with pytest.raises(ValidationError) as caught:
            BuilderSettings()
        assert _error_fields(caught.value) == {"amqp_url"}


class TestDatabaseUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://u@h:5432/d",
            "postgres://u@h:5432/d",
            "postgresql+asyncpg://u@h:5432/d",
        ],
    )
    def test_postgres_urls_are_normalised_to_asyncpg(self, url: str) -> None:
        assert RuntimeSettings(database_url=url).database_url == "postgresql+asyncpg://u@h:5432/d"

    @pytest.mark.parametrize(
        "url",
        ["mysql://u@h/d", "sqlite:///x.db", "postgresql+psycopg2://u@h/d", "not a url"],
    )
    def test_other_database_urls_fail_naming_the_field(self, url: str) -> None:
        with pytest.raises(ValidationError) as caught:
            RuntimeSettings(database_url=url)
        assert _error_fields(caught.value) == {"database_url"}

    def test_libpq_sslmode_becomes_asyncpg_ssl(self) -> None:
        settings = RuntimeSettings(database_url="postgresql://u@h/d?sslmode=verify-full")
        assert settings.database_url == "postgresql+asyncpg://u@h/d?ssl=verify-full"

    def test_scheme_error_says_what_is_accepted(self) -> None:
        with pytest.raises(ValidationError, match=r"postgresql://"):
            RuntimeSettings(database_url="mysql://u@h/d")


class TestOtherUrls:
    @pytest.mark.parametrize(
        ("field", "url"),
        [
            ("amqp_url", "http://mq:5672/"),
            ("amqp_url", "amqp://"),
            ("redis_url", "memcached://cache:11211"),
            ("otlp_endpoint", "grpc://tempo:4317"),
        ],
    )
    def test_bad_url_fails_naming_the_field(self, field: str, url: str) -> None:
        with pytest.raises(ValidationError) as caught:
            RuntimeSettings(**{field: url})
        assert _error_fields(caught.value) == {field}

    def test_http_port_out_of_range_fails(self) -> None:
        with pytest.raises(ValidationError) as caught:
            RuntimeSettings(http_port=70000)
        assert _error_fields(caught.value) == {"http_port"}


class TestPlaceholderSecrets:
    @pytest.mark.parametrize(
        ("field", "url"),
        [
            ("database_url", "postgresql://app:changeme@db/mlplane"),
            ("amqp_url", "amqp://app:changeme@mq:5672/"),
            ("redis_url", "redis://:ChangeMe@cache:6379/0"),
        ],
    )
    @pytest.mark.parametrize("env", ["test", "prod"])
    def test_placeholder_password_is_refused_outside_dev(
        self, field: str, url: str, env: str
    ) -> None:
        with pytest.raises(ValidationError, match="placeholder") as caught:
            RuntimeSettings(env=env, **{field: url})
        assert _error_fields(caught.value) == {field}

    def test_placeholder_password_is_allowed_in_dev(self) -> None:
        settings = RuntimeSettings(env="dev", amqp_url="amqp://app:changeme@mq:5672/")
        assert settings.amqp_url == "amqp://app:changeme@mq:5672/"

    def test_real_password_is_accepted_in_prod(self) -> None:
        settings = RuntimeSettings(env="prod", database_url="postgresql://app:Zq8-r1@db/mlplane")
        assert settings.database_url == "postgresql+asyncpg://app:Zq8-r1@db/mlplane"


class _ExampleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLPLANE_EXAMPLE_SVC_", extra="ignore")

    env: Literal["dev", "prod"] = Field(default="dev", validation_alias="MLPLANE_ENV")
    burst: int = Field(default=1, ge=1)
    locations: dict[str, list[str]] = Field(default_factory=dict)
    low: int = 0
    high: int = 0

    @model_validator(mode="after")
    def _ordered(self) -> _ExampleSettings:
        if self.low > self.high:
            raise ValueError("MLPLANE_EXAMPLE_SVC_LOW must not exceed MLPLANE_EXAMPLE_SVC_HIGH")
        return self


class TestLoadSettings:
    def test_each_bad_variable_is_named_with_its_prefix(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_EXAMPLE_SVC_BURST", "0")
        monkeypatch.setenv("MLPLANE_EXAMPLE_SVC_LOCATIONS", '{"fraud": [1]}')
        with pytest.raises(InvalidInput) as caught:
            load_settings(_ExampleSettings)
        detail = caught.value.detail
        assert detail.startswith("invalid example-svc settings: ")
        assert "MLPLANE_EXAMPLE_SVC_BURST: Input should be greater than or equal to 1" in detail
        assert "MLPLANE_EXAMPLE_SVC_LOCATIONS[fraud.0]: " in detail

    def test_a_field_read_under_an_alias_names_the_alias(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_ENV", "staging")
        with pytest.raises(InvalidInput) as caught:
            load_settings(_ExampleSettings)
        assert "MLPLANE_ENV: " in caught.value.detail
        assert "MLPLANE_EXAMPLE_SVC_MLPLANE_ENV" not in caught.value.detail

    def test_a_rule_across_fields_keeps_its_own_message(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_EXAMPLE_SVC_LOW", "2")
        with pytest.raises(InvalidInput) as caught:
            load_settings(_ExampleSettings)
        assert caught.value.detail == (
            "invalid example-svc settings: "
            "MLPLANE_EXAMPLE_SVC_LOW must not exceed MLPLANE_EXAMPLE_SVC_HIGH"
        )

    def test_a_value_that_is_not_json_is_invalid_input(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_EXAMPLE_SVC_LOCATIONS", "{not json")
        with pytest.raises(InvalidInput, match="MLPLANE_EXAMPLE_SVC_LOCATIONS"):
            load_settings(_ExampleSettings)

    def test_good_settings_are_returned(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLPLANE_ENV", "prod")
        monkeypatch.setenv("MLPLANE_EXAMPLE_SVC_BURST", "7")
        loaded = load_settings(_ExampleSettings)
        assert (loaded.env, loaded.burst) == ("prod", 7)
