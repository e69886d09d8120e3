"""The drift service's own settings (prefix `MLPLANE_DRIFT_`); shared ones stay in
RuntimeSettings.

Windows (their default size and age), intake limits, the detection thresholds, the
hysteresis, where profiles, reports and datasets are kept (S3, or the local disk when
no endpoint is set) and the verdict worker's limits.
"""

from __future__ import annotations

import re

from mlplane_contracts.events import MAX_DRIFT_SAMPLES
from mlplane_runtime.s3_bucket import BUCKET_PATTERN, DEFAULT_BUCKET, PREFIX_PATTERN, BucketSpace
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
_LOCATION = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[!-~]*)?$"


class DriftSettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_DRIFT_", extra="ignore")

    window_count: int = Field(default=1000, ge=0, le=100_000_000)
    """A window closes once it holds this many samples (0: by time only)."""
    window_seconds: float = Field(default=3600.0, ge=0, le=366 * 86400)
    """A window closes this long after its first sample (0: by count only)."""
    max_batch_samples: int = Field(default=MAX_DRIFT_SAMPLES, ge=1, le=MAX_DRIFT_SAMPLES)
    """The most samples one HTTP intake request may carry."""
    max_dataset_bytes: int = Field(default=1024 * MIB, ge=1024, le=64 * 1024 * MIB)
    """The largest dataset or Parquet batch read from object storage."""

    reference_from_samples: int = Field(default=0, ge=0, le=1_000_000)
    """0: samples for a version without a reference are refused. N: its first N samples
    (whole batches) become its reference profile, and windows start after them."""

    drift_share: float = Field(default=0.5, gt=0, le=1)
    """The dataset counts as drifted when this share of its features drifted."""
    rearm_after_clean_windows: int = Field(default=2, ge=1, le=1000)
    """After an alert, this many windows without dataset drift re-arm it."""

    s3_endpoint_url: AnyHttpUrl | None = None
    """S3 API for profiles, reports and datasets; unset: profiles and reports on the local
    disk under the data dir, datasets only uploaded (no `s3://` dataset can be read)."""
    s3_bucket: str = Field(default=DEFAULT_BUCKET, pattern=BUCKET_PATTERN)
    """The platform's bucket (one for every service); made at start-up when missing."""
    s3_prefix: str = Field(default="drift/", pattern=PREFIX_PATTERN)
    """The drift service's part of the bucket: profiles, reports and a team's own
    datasets lie under `<prefix>teams/<team>/`."""
    s3_region: str = Field(default="us-east-1", min_length=1)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    team_data_locations: dict[str, list[str]] = Field(default_factory=dict)
    """`s3://bucket/prefix` locations a team's datasets and sample files may be read from,
    besides `s3://<s3_bucket>/<s3_prefix>teams/<team>/` (JSON: {"fraud-team": ["s3://ml-data/fraud/"]})."""

    max_concurrent_verdicts: int = Field(default=2, ge=1, le=64)
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often an idle worker looks for windows to close by time or to judge."""
    compact_partials_over: int = Field(default=64, ge=2, le=100_000)
    """An open window holding more partial summaries than this (one per batch) has them
    merged into one in the background, so judging it reads and merges few."""
    profile_cache_size: int = Field(default=64, ge=1, le=10_000)
    """Reference profiles kept in memory per process (they never change under one URI)."""

    @field_validator("team_data_locations")
    @classmethod
    def _locations(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, locations in value.items():
            for location in locations:
                if re.match(_LOCATION, location) is None:
                    raise ValueError(f"{team}: {location!r} is not s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        if not self.window_count and not self.window_seconds:
            raise ValueError(
                "MLPLANE_DRIFT_WINDOW_COUNT and MLPLANE_DRIFT_WINDOW_SECONDS cannot both be 0"
            )
        if self.s3_endpoint_url is not None and (
            self.s3_access_key is None or self.s3_secret_key is None
        ):
            raise ValueError(
                "MLPLANE_DRIFT_S3_ACCESS_KEY and MLPLANE_DRIFT_S3_SECRET_KEY are required "
                "when MLPLANE_DRIFT_S3_ENDPOINT_URL is set"
            )
        return self

    def s3_space(self) -> BucketSpace:
        """Where the drift service's own objects go in S3."""
        return BucketSpace(self.s3_bucket, self.s3_prefix, "MLPLANE_DRIFT_S3_BUCKET")

    def data_locations(self, team: str) -> tuple[str, ...]:
        """The `s3://` prefixes `team` may name datasets under."""
        own = self.s3_space().uri(f"teams/{team}/")
        return (own, *self.team_data_locations.get(team, ()))
