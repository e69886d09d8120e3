"""An MLflow tracking server, as the registry reads it: runs, logged models, artifacts.

Only what registration needs, over MLflow's REST API: `runs/get` (artifact root and
tags), `logged-models/<id>` (MLflow 3's logged models), and the artifact proxy
(`mlflow-artifacts/artifacts`: list a directory, stream a file). Connection failures,
timeouts and 5xx are `TrackingUnavailable` (worth another try); anything else the
server refuses is `TrackingRefused` with its message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from mlplane_registry.domain.registration import RunFacts

CHUNK_SIZE = 1024 * 1024
TIMEOUT_S = 30.0


class TrackingUnavailable(Exception):
    """The tracking server did not answer, or failed (5xx): a later try may work."""


class TrackingRefused(Exception):
    """The tracking server answered no (404, 403, ...): the message says what it said."""


@dataclass(frozen=True, slots=True)
class Listed:
    name: str
    is_dir: bool
    size: int | None


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


class TrackingServer:
    """The tracking server at `base_url` (its root, e.g. `http://mlflow:5000`)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT_S, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            answer = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise TrackingUnavailable(
                f"the tracking server {self.base_url} did not answer: {type(exc).__name__}"
            ) from exc
        _check(answer, f"{self.base_url}{path}")
        try:
            return answer.json()
        except ValueError:
            raise TrackingRefused(
                f"the tracking server answered {path} with something that is not JSON"
            ) from None

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

    async def list(self, path: str) -> list[Listed]:
        """What the artifact proxy lists under `path` (empty for a file or nothing)."""
        body = await self._get_json("/api/2.0/mlflow-artifacts/artifacts", {"path": path})
        return [
            Listed(
                str(f.get("path", "")),
                bool(f.get("is_dir", False)),
                int(f["file_size"]) if f.get("file_size") is not None else None,
            )
            for f in body.get("files", [])
        ]

    async def chunks(self, path: str) -> AsyncIterator[bytes]:
        """The bytes of the artifact file at `path`, streamed."""
        url = f"/api/2.0/mlflow-artifacts/artifacts/{quote(path)}"
        try:
            async with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    _check(answer, f"{self.base_url}{url}")
                async for chunk in answer.aiter_bytes(CHUNK_SIZE):
                    yield chunk
        except httpx.HTTPError as exc:
            raise TrackingUnavailable(
                f"reading {path} from the tracking server {self.base_url} failed: "
                f"{type(exc).__name__}"
            ) from exc


def _check(answer: httpx.Response, where: str) -> None:
    if answer.status_code < 300:
        return
    if answer.status_code >= 500 or answer.status_code == 429:
        raise TrackingUnavailable(f"{where} answered {answer.status_code}")
    message = ""
    try:
        message = str(answer.json().get("message", ""))[:300]
    except ValueError:
        message = answer.text[:300]
    raise TrackingRefused(f"{where} answered {answer.status_code}: {message}".rstrip(": "))
