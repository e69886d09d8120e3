"""The registry's own settings (prefix `MLPLANE_REGISTRY_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

from mlplane_runtime.s3_bucket import BUCKET_PATTERN, DEFAULT_BUCKET, PREFIX_PATTERN
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_registry.artifacts.store import (
    DEFAULT_DOWNLOAD_EXPIRES_S,
    DEFAULT_PART_SIZE,
    DEFAULT_UPLOAD_EXPIRES_S,
    DEFAULT_UPLOAD_EXPIRY_S,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
)
from mlplane_registry.domain.artifacts import TeamArtifactLocations


class RegistrySettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_", extra="ignore")

    default_page_size: int = Field(default=50, ge=1, le=1000)
    """Versions per search page when the caller does not say."""
    max_page_size: int = Field(default=500, ge=1, le=10_000)
    """The most versions one search page returns."""

    s3_endpoint_url: AnyHttpUrl | None = None
    """S3 API the registry calls (S3, MinIO, SeaweedFS); unset: artifacts on local disk."""
    s3_public_endpoint_url: AnyHttpUrl | None = None
    """S3 address uploaders and downloaders reach, if not `s3_endpoint_url`."""
    s3_bucket: str = Field(default=DEFAULT_BUCKET, pattern=BUCKET_PATTERN)
    """The platform's bucket (one for every service); made at start-up when missing."""
    s3_prefix: str = Field(default="registry/", pattern=PREFIX_PATTERN)
    """The registry's part of the bucket: artifacts lie under `<prefix>teams/<team>/`."""
    s3_region: str = Field(default="us-east-1", min_length=1)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    local_public_url: AnyHttpUrl | None = None
    """Local-disk mode: the registry's public URL that signed URLs start with; unset:
    `http://<MLPLANE_HTTP_HOST>:<MLPLANE_HTTP_PORT>/registry`."""
    upload_part_size: int = Field(default=DEFAULT_PART_SIZE, ge=MIN_PART_SIZE, le=MAX_PART_SIZE)
    """Bytes per part of a presigned multipart upload when the uploader does not say."""
    upload_url_expires_s: int = Field(default=DEFAULT_UPLOAD_EXPIRES_S, ge=60, le=7 * 86400)
    download_url_expires_s: int = Field(default=DEFAULT_DOWNLOAD_EXPIRES_S, ge=60, le=7 * 86400)
    upload_expiry_s: int = Field(default=DEFAULT_UPLOAD_EXPIRY_S, ge=300, le=30 * 86400)
    """An upload not completed this long after it started is refused and swept away."""
    upload_sweep_interval_s: float = Field(default=3600.0, gt=0)
    """How often expired uploads are looked for (aborted on S3, deleted on local disk)."""
    team_artifact_locations: dict[str, list[str]] = Field(default_factory=dict)
    """JSON: team -> `s3://bucket/prefix/` locations whose objects the team's versions may
    point at, besides uploads the registry verified, e.g. `{"fraud": ["s3://ml/fraud/"]}`."""

    @field_validator("team_artifact_locations")
    @classmethod
    def _locations(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        TeamArtifactLocations.parse(value)
        return value

    @model_validator(mode="after")
    def _s3_credentials(self) -> RegistrySettings:
        if self.s3_endpoint_url is not None and (
            self.s3_access_key is None or self.s3_secret_key is None
        ):
            raise ValueError(
                "MLPLANE_REGISTRY_S3_ACCESS_KEY and MLPLANE_REGISTRY_S3_SECRET_KEY are "
                "required when MLPLANE_REGISTRY_S3_ENDPOINT_URL is set"
            )
        if self.upload_expiry_s < self.upload_url_expires_s:
            raise ValueError(
                "MLPLANE_REGISTRY_UPLOAD_EXPIRY_S must be at least "
                "MLPLANE_REGISTRY_UPLOAD_URL_EXPIRES_S (an upload outlives its part URLs)"
            )
        return self

    @property
    def artifact_locations(self) -> TeamArtifactLocations:
        """Where each team's artifacts may lie besides the registry's own store."""
        return TeamArtifactLocations.parse(self.team_artifact_locations)

    @property
    def uses_s3(self) -> bool:
        return self.s3_endpoint_url is not None
