"""The gateway's own settings (prefix `MLPLANE_GATEWAY_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal
from urllib.parse import urlsplit

from mlplane_runtime.settings import PLACEHOLDER_SECRETS, RuntimeSettings
from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_gateway.auth.rate_limits import FailureLimit
from mlplane_gateway.facade.upstreams import UpstreamLimits
from mlplane_gateway.subscriptions.domain import IpNetwork, RetrySchedule, parse_allowlist

DEV_SECRET_KEY = "mlplane-dev-only-gateway-secret-key-do-not-use-in-prod"  # noqa: S105
"""Used when `env` is dev and no secret key is set: keys survive restarts of `make run`."""
MIN_SECRET_LENGTH = 32
FACADE_SERVICES = ("registry", "scanner", "deployer", "drift", "builder")


MAX_BODY_BYTES_CEILING = 64 * 1024 * 1024
"""The body limit the ingress routes declare (they are declared once, at import); each
hosting refuses bodies past its own `max_body_bytes` below it."""


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
    initial_admin_key: bool = True
    """With no bootstrap key, make an admin API key on the first start (no key ever made)
    and write it to `<data dir>/gateway/initial-admin-key` (mode 0600)."""

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

    api_key_cache_s: float = Field(default=60.0, ge=0, le=300)
    """How long a verified API key is kept in memory (0: every request reads the
    database). Revocation still takes effect at once: see `auth.key_cache`."""
    api_key_cache_size: int = Field(default=10_000, ge=1)

    redis_url: str | None = None
    """Rate-limit store; unset: `MLPLANE_REDIS_URL`; neither: an in-process limiter
    (right for one process only)."""
    rate_limit_enabled: bool = True
    key_rate_per_s: float = Field(default=50.0, gt=0)
    key_burst: int = Field(default=100, ge=1)
    team_rate_per_s: float = Field(default=200.0, gt=0)
    team_burst: int = Field(default=400, ge=1)
    auth_failure_limit: int = Field(default=20, ge=1)
    """Failed authentications (a wrong key or token) allowed per client address and per
    key id in the window below; past it, attempts answer 429 until the window ends."""
    auth_failure_window_s: float = Field(default=60.0, gt=0, le=86_400)
    rate_limit_fail_open: bool = True
    """Redis down: let requests through (True, logged) or answer 503 (False)."""
    rate_limit_key_prefix: str = Field(default="mlplane:gateway:rl", min_length=1)
    redis_timeout_s: float = Field(default=0.25, gt=0, le=10)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_BODY_BYTES_CEILING)
    """Largest webhook or CloudEvents body accepted (413 above); at most the ceiling the
    ingress routes declare to the runtime."""

    # -- REST facade ----------------------------------------------------------------------
    registry_url: AnyHttpUrl | None = None
    """The registry's address (`http://registry:8081`; its mount `/registry` is added when
    the URL has no path, e.g. `http://proxy/registry-prefix` is taken as it is). Unset:
    this platform's own address when the registry is installed here, else not served."""
    scanner_url: AnyHttpUrl | None = None
    deployer_url: AnyHttpUrl | None = None
    drift_url: AnyHttpUrl | None = None
    builder_url: AnyHttpUrl | None = None
    identity_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLPLANE_GATEWAY_IDENTITY_SECRET", "MLPLANE_IDENTITY_SECRET"),
    )
    """Signs the identity forwarded to services (each verifies with a key derived from it).
    Unset: `MLPLANE_IDENTITY_SECRET` (shared with services of the same platform), else
    the platform's own (in dev, `<data dir>/identity-secret`), else derived from the
    secret key."""
    identity_lifetime_s: int = Field(default=30, ge=1, le=60)
    upstream_timeout_s: float = Field(default=30.0, gt=0, le=600)
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    upstream_retries: int = Field(default=2, ge=0, le=5)
    """Tries after the first, for GET/HEAD and requests carrying an Idempotency-Key."""
    upstream_breaker_failures: int = Field(default=5, ge=1)
    upstream_breaker_cool_down_s: float = Field(default=30.0, gt=0)
    """The longest an open breaker waits before letting a trial call through."""
    upstream_breaker_first_cool_down_s: float = Field(default=2.0, gt=0)
    """The first wait after the breaker opens; doubles with each failed trial, up to
    the cool-down above, so a service back after a blip is probed within seconds."""
    upstream_max_connections: int = Field(default=100, ge=1)
    upstream_max_keepalive: int = Field(default=20, ge=1)

    # -- subscriptions --------------------------------------------------------------------
    sink_allowlist: list[str] = Field(default_factory=list)
    """CIDRs (JSON list) that sinks may resolve to although private or loopback."""
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    """Tries of one delivery before it is dead-lettered."""
    delivery_base_delay_s: float = Field(default=5.0, gt=0)
    delivery_max_delay_s: float = Field(default=3600.0, gt=0)
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=120)
    delivery_concurrency: int = Field(default=16, ge=1, le=512)
    delivery_concurrency_per_sink: int = Field(default=2, ge=1, le=512)
    """Deliveries at once to one sink server (scheme, host, port) per replica: a slow
    sink holds this many of the `delivery_concurrency` slots, never more."""
    max_subscriptions_per_team: int = Field(default=25, ge=1, le=10_000)
    """Past it, creating a subscription answers 409."""
    delivery_poll_s: float = Field(default=1.0, gt=0, le=60)
    stream_keepalive_s: float = Field(default=15.0, gt=0, le=300)

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("sink_allowlist")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        parse_allowlist(value)  # ValueError naming the bad CIDR
        return value

    @model_validator(mode="after")
    def _secrets_and_oidc(self) -> GatewaySettings:
        if self.env != "dev":
            if self.secret_key is None:
                raise ValueError("MLPLANE_GATEWAY_SECRET_KEY is required outside dev")
            _check_secret("MLPLANE_GATEWAY_SECRET_KEY", self.secret_key)
        if self.bootstrap_admin_key is not None:
            _check_secret("MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY", self.bootstrap_admin_key)
        if self.identity_secret is not None:
            _check_secret("MLPLANE_GATEWAY_IDENTITY_SECRET", self.identity_secret)
        if self.delivery_base_delay_s > self.delivery_max_delay_s:
            raise ValueError(
                "MLPLANE_GATEWAY_DELIVERY_BASE_DELAY_S must not exceed ..._DELIVERY_MAX_DELAY_S"
            )
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

    @property
    def uses_dev_secret_key(self) -> bool:
        """True when no secret key is set and the built-in development one is used."""
        return self.secret_key is None

    def pepper(self) -> bytes:
        """The secret key as bytes (the dev default when unset in dev)."""
        key = self.secret_key.get_secret_value() if self.secret_key else DEV_SECRET_KEY
        return key.encode()

    def effective_redis_url(self, runtime: RuntimeSettings | None) -> str | None:
        return self.redis_url or (runtime.redis_url if runtime is not None else None)

    def identity_key(self, platform_secret: bytes | None = None) -> bytes:
        """The secret forwarded identities are signed from: `identity_secret`, else the
        hosting platform's (`platform_secret`: `make run` makes one in its data
        directory), else one derived from the secret key."""
        if self.identity_secret is not None:
            return self.identity_secret.get_secret_value().encode()
        if platform_secret is not None:
            return platform_secret
        # A key of its own, so a forwarded identity never reveals anything about the pepper.
        return hmac.new(self.pepper(), b"mlplane-gateway-identity", hashlib.sha256).digest()

    def upstream_urls(self, platform_url: str | None, installed: frozenset[str]) -> dict[str, str]:
        """Service name → base URL for the facade.

        A service with no URL set is reached at `platform_url`/<service> when it is
        `installed` in this process's platform (the one-process `make run`);
        otherwise it is not configured and its routes answer 503.
        """
        urls: dict[str, str] = {}
        for service in FACADE_SERVICES:
            configured = getattr(self, f"{service}_url")
            if configured is not None:
                urls[service] = with_mount(str(configured), service)
            elif platform_url is not None and service in installed:
                urls[service] = f"{platform_url}/{service}"
        return urls

    def failure_limit(self) -> FailureLimit:
        return FailureLimit(self.auth_failure_limit, self.auth_failure_window_s)

    def upstream_limits(self) -> UpstreamLimits:
        return UpstreamLimits(
            timeout_s=self.upstream_timeout_s,
            connect_timeout_s=self.upstream_connect_timeout_s,
            retries=self.upstream_retries,
            failure_threshold=self.upstream_breaker_failures,
            cool_down_s=self.upstream_breaker_cool_down_s,
            first_cool_down_s=self.upstream_breaker_first_cool_down_s,
            max_connections=self.upstream_max_connections,
            max_keepalive_connections=self.upstream_max_keepalive,
        )

    def retry_schedule(self) -> RetrySchedule:
        return RetrySchedule(
            max_attempts=self.delivery_max_attempts,
            base_delay_s=self.delivery_base_delay_s,
            max_delay_s=self.delivery_max_delay_s,
        )

    def allowlist(self) -> tuple[IpNetwork, ...]:
        return parse_allowlist(self.sink_allowlist)


def with_mount(url: str, service: str) -> str:
    """`url` as the facade calls it: a bare address (`http://registry:8081`) gets the
    service's mount (`/registry`), where `mlplane serve <service>` serves its routes; a
    URL with a path (a reverse proxy's prefix) is taken as it is."""
    url = url.rstrip("/")
    return url if urlsplit(url).path else f"{url}/{service}"


def platform_url(runtime: RuntimeSettings | None) -> str | None:
    """The address this process's platform serves on, as a client reaches it from here."""
    if runtime is None:
        return None
    host = runtime.http_host
    # A wildcard bind is reached on loopback from the same machine.
    if host in ("0.0.0.0", ""):  # noqa: S104
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{runtime.http_port}"


def _check_secret(name: str, value: SecretStr) -> None:
    secret = value.get_secret_value()
    if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} must be a real secret of at least {MIN_SECRET_LENGTH} characters")
