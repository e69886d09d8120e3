"""An MLflow tracking server, as the registry reads it: runs, logged models, artifacts.

Only what registration needs, over MLflow's REST API: `runs/get` (artifact root and
tags), `logged-models/<id>` (MLflow 3's logged models), and the artifact proxy
(`mlflow-artifacts/artifacts`: list a directory, stream a file). Connection failures,
timeouts and 5xx are `TrackingUnavailable` (worth another try); anything else the
server refuses is `TrackingRefused` with its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from mlplane_runtime.mlflow_artifacts import (
    Listed,
    MlflowArtifacts,
    TrackingRefused,
    TrackingUnavailable,
)

from mlplane_registry.domain.registration import RunFacts

__all__ = [
    "Listed",
    "LoggedModelInfo",
    "RunInfo",
    "TrackingRefused",
    "TrackingServer",
    "TrackingUnavailable",
]


@dataclass(frozen=True, slots=True)
class RunInfo:
    artifact_uri: str
    facts: RunFacts
    model_ids: tuple[str, ...] = ()
    """MLflow 3's logged models the run produced (`outputs.model_outputs`)."""


@dataclass(frozen=True, slots=True)
class LoggedModelInfo:
    artifact_uri: str
    name: str
    source_run_id: str | None


class TrackingServer(MlflowArtifacts):
    """The tracking server at `base_url` (its root, e.g. `http://mlflow:5000`): its
    artifact proxy (`mlplane_runtime.mlflow_artifacts`), runs and logged models."""

    async def run(self, run_id: str) -> RunInfo:
        """A run's artifact root, tags and page. Raises `TrackingRefused`, `TrackingUnavailable`."""
        body = await self._get_json("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        run = body.get("run", {})
        info = run.get("info", {})
        tags = {t.get("key", ""): t.get("value", "") for t in run.get("data", {}).get("tags", [])}
        experiment = info.get("experiment_id", "")
        url = f"{self.base_url}/#/experiments/{quote(experiment)}/runs/{quote(run_id)}"
        outputs = run.get("outputs", {}).get("model_outputs", [])
        model_ids = tuple(str(o["model_id"]) for o in outputs if o.get("model_id"))
        return RunInfo(str(info.get("artifact_uri", "")), RunFacts(tags, url), model_ids)

    async def logged_model(self, model_id: str) -> LoggedModelInfo:
        """A logged model's artifact location, name and the run that logged it (if any)."""
        body = await self._get_json(f"/api/2.0/mlflow/logged-models/{quote(model_id)}")
        info = body.get("model", {}).get("info", {})
        return LoggedModelInfo(
            str(info.get("artifact_uri", "")),
            str(info.get("name", "")),
            info.get("source_run_id") or None,
        )
