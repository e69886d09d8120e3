"""The builder's own settings (prefix `MLPLANE_BUILDER_`); shared ones stay in RuntimeSettings."""

from __future__ import annotations

from typing import Annotated

from mlplane_contracts.events import ModelFramework
from mlplane_oci import ImageReference, InvalidReference
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlplane_builder.domain.naming import check_repository_template
from mlplane_builder.domain.tracking_locations import tracking_location_prefix

DEFAULT_REGISTRY_STORE = "s3://mlplane/registry/"
"""The registry's store by its defaults: the prefix `registry/` of the platform's bucket."""

SCRATCH = "scratch"
"""A framework's base image set to this word: the image holds only the model layer."""


def _parse_base_images(value: object) -> object:
    """`sklearn=reg/a@sha256:..,onnx=...` (comma-separated) or a JSON object."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        import json

        return json.loads(text)
    pairs: dict[str, str] = {}
    for item in text.split(","):
        framework, sep, reference = item.partition("=")
        if not sep:
            raise ValueError(f"base image entry {item!r} is not framework=reference")
        pairs[framework.strip()] = reference.strip()
    return pairs


class BuilderSettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_BUILDER_", extra="ignore")

    registry_url: AnyHttpUrl | None = None
    """Target OCI registry (Harbor, distribution) as `https://host[:port]`; unset: embedded
    mode, images are written as an OCI image layout under the platform's data directory."""
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    """Credentials for the target registry (Basic, or exchanged for a Bearer token)."""
    insecure_registries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Registry hosts (`host:port`) of base images reached over plain HTTP; loopback
    hosts always are. Comma-separated."""
    repository_template: str = "mlplane/{team}/{model}"
    """Where a version's image goes inside the target registry; `{team}` and `{model}`."""
    base_images: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Base serving image per framework, pinned by digest (`sklearn=reg/img@sha256:..,...`
    or JSON); `default` applies to frameworks not named; `scratch` means no base."""
    compression_level: int = Field(default=1, ge=0, le=9)
    """gzip level of the model layer: weights barely compress, speed matters more."""
    max_concurrent_builds: int = Field(default=2, ge=1, le=64)
    build_timeout_s: float = Field(default=1800.0, gt=0)
    build_attempts: int = Field(default=3, ge=1, le=20)
    """Tries of a build whose failure is retryable (registry or storage unavailable)."""
    retry_delay_s: float = Field(default=30.0, ge=0)
    """Wait before the second try of a build; doubles for each try after it."""
    registry_retry_attempts: int = Field(default=5, ge=1, le=20)
    """Tries of one registry request before the build counts the registry as unavailable."""
    registry_retry_delay_s: float = Field(default=0.5, gt=0)
    registry_timeout_s: float = Field(default=60.0, gt=0)
    stream_uploads: bool = True
    """Upload the model layer in one streamed request, as Docker and skopeo push: the
    fastest (no request per chunk), but a connection lost mid-upload starts the
    layer again (a retryable failure). False: one PATCH per `upload_chunk_size`
    bytes, each resumed after a failure."""
    layer_chunk_size: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    """Bytes per step of the model layer's pipeline (read, tar, gzip, hash) when
    uploads are streamed. A build holds a few steps' bytes at once: 1 MiB keeps one
    build's buffers near 15 MiB; larger steps save no CPU."""
    upload_chunk_size: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    """Bytes per blob upload request (PATCH) when uploads are not streamed (and per
    step of the model layer's pipeline then). A build holds about a dozen chunks at
    once (read, tar, gzip, upload): 4 MiB keeps one build near 120 MiB."""
    lease_s: float = Field(default=60.0, ge=0.1)
    """A running build's lease; its worker renews it every third of it. A build whose
    lease ran out (its worker crashed) is picked up again by another worker."""
    poll_interval_s: float = Field(default=5.0, gt=0)
    """How often an idle worker looks for pending builds it was not woken for."""

    s3_endpoint_url: AnyHttpUrl | None = None
    """S3 API the artifacts are read from (S3, MinIO, SeaweedFS); unset: the default
    AWS endpoint when an `s3://` artifact comes, local-disk `file://` artifacts always."""
    s3_region: str = Field(default="us-east-1", min_length=1)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    local_artifact_root: str | None = None
    """The registry's local-disk object directory: `file://` artifacts must be under its
    `teams/<team>/models/<model>/`; unset: `<data dir>/registry/artifacts/objects`."""
    registry_artifact_store: str = Field(
        default=DEFAULT_REGISTRY_STORE,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]+[a-z0-9]/([a-z0-9][a-z0-9._-]*/)*$",
    )
    """The registry's S3 store (`s3://<MLPLANE_REGISTRY_S3_BUCKET>/<MLPLANE_REGISTRY_S3_PREFIX>`):
    `s3://` artifacts are read from its `teams/<team>/models/<model>/` ..."""
    team_artifact_locations: dict[str, list[str]] = Field(default_factory=dict)
    """... or from a team's own locations, JSON team -> `s3://bucket/prefix/` (the same
    value as MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS)."""

    mlflow_tracking_uri: AnyHttpUrl | None = None
    """The MLflow tracking server whose artifact store `mlflow-artifacts:/` artifacts are
    read from (the same value as MLPLANE_REGISTRY_MLFLOW_TRACKING_URI); unset: they are
    refused."""
    mlflow_tracking_token: SecretStr | None = None
    """Bearer token for the tracking server, if it needs one."""
    mlflow_tracking_locations: dict[str, list[str]] = Field(default_factory=dict)
    """JSON: team -> `mlflow-artifacts:/<prefix>/` locations of the tracking server the
    builder reads that team's artifacts from (`mlflow-artifacts:/` for all of it): the
    same value as MLPLANE_REGISTRY_MLFLOW_TRACKING_LOCATIONS."""
    max_artifact_files: int = Field(default=10_000, ge=1, le=1_000_000)
    """The most files of a directory artifact (an MLflow model) the builder packages."""

    @field_validator("mlflow_tracking_locations")
    @classmethod
    def _tracking_locations(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, locations in value.items():
            for location in locations:
                if tracking_location_prefix(location) is None:
                    raise ValueError(
                        f"tracking server location {location!r} of team {team!r} must be "
                        "mlflow-artifacts:/ or mlflow-artifacts:/<prefix>/ (ending with '/', "
                        "no '.', '..' or empty segment)"
                    )
        return value

    @field_validator("team_artifact_locations")
    @classmethod
    def _locations(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, locations in value.items():
            for location in locations:
                if not location.startswith("s3://") or not location.endswith("/"):
                    raise ValueError(
                        f"artifact location {location!r} of team {team!r} must be "
                        "s3://<bucket>/<prefix>/"
                    )
        return value

    @field_validator("insecure_registries", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("base_images", mode="before")
    @classmethod
    def _base_images_syntax(cls, value: object) -> object:
        return _parse_base_images(value)

    @field_validator("base_images")
    @classmethod
    def _pinned_by_digest(cls, value: dict[str, str]) -> dict[str, str]:
        known = {framework.value for framework in ModelFramework} | {"default"}
        for framework, reference in value.items():
            if framework not in known:
                raise ValueError(
                    f"base image given for {framework!r}, which is not a framework "
                    f"({', '.join(sorted(known))})"
                )
            if reference == SCRATCH:
                continue
            try:
                pinned = ImageReference.parse(reference).digest is not None
            except InvalidReference:
                pinned = False
            if not pinned:
                raise ValueError(
                    f"base image for {framework!r} is {reference!r}: it must be pinned by "
                    "digest, e.g. harbor.example.com/serving/sklearn@sha256:<64 hex> (a tag "
                    "can move between two builds; reproducible builds need the digest)"
                )
        return value

    @field_validator("repository_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_repository_template(value)

    @model_validator(mode="after")
    def _credentials_together(self) -> BuilderSettings:
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError(
                "MLPLANE_BUILDER_REGISTRY_USERNAME and MLPLANE_BUILDER_REGISTRY_PASSWORD "
                "go together"
            )
        if (self.s3_access_key is None) != (self.s3_secret_key is None):
            raise ValueError(
                "MLPLANE_BUILDER_S3_ACCESS_KEY and MLPLANE_BUILDER_S3_SECRET_KEY go together"
            )
        return self

    @property
    def embedded(self) -> bool:
        """No target registry: images go to an OCI image layout on the local disk."""
        return self.registry_url is None

    @property
    def registry_base_url(self) -> str | None:
        return None if self.registry_url is None else str(self.registry_url).rstrip("/")

    def registry_host(self) -> str | None:
        """The target registry's `host[:port]`, as image references name it."""
        if self.registry_url is None:
            return None
        host = self.registry_url.host or ""
        port = self.registry_url.port
        default = 443 if self.registry_url.scheme == "https" else 80
        return host if port in (None, default) else f"{host}:{port}"

    def registry_scheme(self, host: str) -> str:
        """How to reach a base image's registry `host`: https, or http when insecure."""
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name in ("localhost", "127.0.0.1", "[::1]") or host in self.insecure_registries:
            return "http"
        return "https"

    def base_image_for(self, framework: str) -> str | None:
        """The pinned base image of `framework` (or `default`); None: a scratch base."""
        reference = self.base_images.get(framework, self.base_images.get("default"))
        return None if reference in (None, SCRATCH) else reference
