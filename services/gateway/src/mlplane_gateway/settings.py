"""The gateway's own settings (prefix `MLPLANE_GATEWAY_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

from typing import Literal

from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import PLACEHOLDER_SECRETS, RuntimeSettings
from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "mlplane-dev-only-gateway-secret-key-do-not-use-in-prod"  # noqa: S105
"""Used when `env` is dev and no secret key is set: keys survive restarts of `make run`."""
MIN_SECRET_LENGTH = 32


class GatewaySettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(
        env_prefix="MLPLANE_GATEWAY_", extra="ignore", populate_by_name=True
    )

    env: Literal["dev", "test", "prod"] = Field(default="dev", validation_alias="MLPLANE_ENV")
    """Read from `MLPLANE_ENV` (the runtime's): outside dev, secrets must be real."""

    secret_key: SecretStr | None = None
    """Keys API-key hashes and derives webhook secrets. Required outside dev; changing
    it invalidates every API key and webhook secret."""
    bootstrap_admin_key: SecretStr | None = None
    """An operator credential with every scope for every team (to create the first keys)."""

    oidc_issuer: str | None = None
    """Expected `iss` of bearer JWTs; unset: JWTs are not accepted."""
    oidc_audience: str | None = None
    """Expected `aud` of bearer JWTs (required with the issuer)."""
    oidc_jwks_url: AnyHttpUrl | None = None
    """Where the issuer publishes its JWKS (fetched, cached, refetched on an unknown `kid`)."""
    oidc_jwks_json: str | None = None
    """The JWKS inline, as JSON (instead of a URL)."""
    oidc_team_claim: str = Field(default="mlplane_team", min_length=1)
    oidc_scopes_claim: str = Field(default="scope", min_length=1)
    """A space-separated string (RFC 8693 `scope`) or a list (`scp`, `roles`)."""
    oidc_subject_claim: str = Field(default="sub", min_length=1)
    oidc_algorithms: tuple[Literal["RS256", "ES256"], ...] = ("RS256", "ES256")
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    oidc_require_nbf: bool = True
    """Refuse tokens without `nbf` (turn off for issuers that never set it)."""
    oidc_jwks_cache_s: int = Field(default=3600, ge=10)
    oidc_jwks_refresh_cooldown_s: float = Field(default=30.0, ge=0)
    """An unknown `kid` refetches the JWKS at most this often (no refetch storm)."""

    redis_url: str | None = None
    """Rate-limit store; unset: `MLPLANE_REDIS_URL`; neither: an in-process limiter
    (right for one process only)."""
    rate_limit_enabled: bool = True
    key_rate_per_s: float = Field(default=50.0, gt=0)
    key_burst: int = Field(default=100, ge=1)
    team_rate_per_s: float = Field(default=200.0, gt=0)
    team_burst: int = Field(default=400, ge=1)
    rate_limit_fail_open: bool = True
    """Redis down: let requests through (True, logged) or answer 503 (False)."""
    rate_limit_key_prefix: str = Field(default="mlplane:gateway:rl", min_length=1)
    redis_timeout_s: float = Field(default=0.25, gt=0, le=10)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest webhook or CloudEvents body accepted (413 above)."""

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _secrets_and_oidc(self) -> GatewaySettings:
        if self.env != "dev":
            if self.secret_key is None:
                raise ValueError("MLPLANE_GATEWAY_SECRET_KEY is required outside dev")
            _check_secret("MLPLANE_GATEWAY_SECRET_KEY", self.secret_key)
        if self.bootstrap_admin_key is not None:
            _check_secret("MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY", self.bootstrap_admin_key)
        oidc = (self.oidc_issuer, self.oidc_audience)
        if any(v is not None for v in oidc) or self.oidc_jwks_url or self.oidc_jwks_json:
            if None in oidc:
                raise ValueError(
                    "MLPLANE_GATEWAY_OIDC_ISSUER and MLPLANE_GATEWAY_OIDC_AUDIENCE go together"
                )
            if (self.oidc_jwks_url is None) == (self.oidc_jwks_json is None):
                raise ValueError(
                    "set one of MLPLANE_GATEWAY_OIDC_JWKS_URL and MLPLANE_GATEWAY_OIDC_JWKS_JSON"
                )
        return self

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    def pepper(self) -> bytes:
        """The secret key as bytes (the dev default when unset in dev)."""
        key = self.secret_key.get_secret_value() if self.secret_key else DEV_SECRET_KEY
        return key.encode()

    def effective_redis_url(self, runtime: RuntimeSettings | None) -> str | None:
        return self.redis_url or (runtime.redis_url if runtime is not None else None)


def _check_secret(name: str, value: SecretStr) -> None:
    secret = value.get_secret_value()
    if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} must be a real secret of at least {MIN_SECRET_LENGTH} characters")


def load_settings() -> GatewaySettings:
    """The settings from the environment; `InvalidInput` naming each bad variable."""
    try:
        return GatewaySettings()
    except ValidationError as exc:
        problems = "; ".join(
            "MLPLANE_GATEWAY_"
            + "_".join(str(part) for part in error["loc"]).upper()
            + f": {error['msg']}"
            if error["loc"]
            else str(error["msg"]).removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise InvalidInput(f"invalid gateway settings: {problems}") from exc
