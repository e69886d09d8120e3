"""Settings of the MLflow-compatible API (prefix `MLPLANE_REGISTRY_MLFLOW_`)."""

from __future__ import annotations

from mlplane_contracts.types import DnsLabel
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_registry.domain.artifacts import TeamArtifactLocations, TrackingLocation


class MlflowApiSettings(BaseSettings):
    """Settings of the MLflow-compatible API (prefix `MLPLANE_REGISTRY_MLFLOW_`)."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_REGISTRY_MLFLOW_", extra="ignore")

    default_team: DnsLabel = "default"
    """The team of MLflow requests that carry no `X-Mlplane-Team` header."""
    tracking_uri: AnyHttpUrl | None = None
    """An MLflow tracking server whose runs, logged models and artifacts (`runs:/`,
    `models:/m-...`, `mlflow-artifacts:/`) the registry reads to verify a version
    created with only a `source`, and whose run tags give its lineage; unset: none."""
    tracking_token: SecretStr | None = None
    """Bearer token for the tracking server, if it needs one."""
    tracking_locations: dict[str, list[str]] = Field(default_factory=dict)
    """JSON: team -> `mlflow-artifacts:/<prefix>/` locations of the tracking server the
    team's versions may point at (`mlflow-artifacts:/` for all of it), e.g.
    `{"fraud": ["mlflow-artifacts:/"]}`. A tracking server storing artifacts in S3 hands
    out `s3://` URIs: those follow MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS."""
    registration_concurrency: int = Field(default=2, ge=1, le=64)
    """Artifacts read and hashed at once by one registry process."""
    registration_lease_s: float = Field(default=120.0, gt=0)
    registration_poll_s: float = Field(default=5.0, gt=0)
    registration_attempts: int = Field(default=5, ge=1, le=100)
    """Tries against an unreachable store or tracking server before the version fails."""
    registration_max_files: int = Field(default=10_000, ge=1, le=1_000_000)
    """The most files of a directory artifact (an MLflow model) the registry hashes."""

    @field_validator("tracking_locations")
    @classmethod
    def _locations(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for locations in value.values():
            for text in locations:
                TrackingLocation.parse(text)
        TeamArtifactLocations.parse(value)
        return value

    def with_tracking(self, locations: TeamArtifactLocations) -> TeamArtifactLocations:
        """`locations` and each team's tracking server locations, together."""
        extra = TeamArtifactLocations.parse(self.tracking_locations).by_team
        merged = dict(locations.by_team)
        for team, more in extra.items():
            merged[team] = (*merged.get(team, ()), *more)
        return TeamArtifactLocations(merged)
