"""An MLflow tracking server's artifact proxy (`mlflow server --serve-artifacts`, MLflow's
default), as mlplane reads it: list a directory, stream a file.

The registry reads a version's `mlflow-artifacts:/` artifact through it to verify it,
and the builder reads it again to build the image: both with this client, so both see
the same listing and the same bytes. Connection failures, timeouts, 429 and 5xx are
`TrackingUnavailable` (worth another try); anything else the server refuses is
`TrackingRefused` with its message (never the token).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

CHUNK_SIZE = 1024 * 1024
TIMEOUT_S = 30.0
ARTIFACTS_SCHEME = "mlflow-artifacts:/"
"""How MLflow names an artifact its tracking server proxies: `mlflow-artifacts:/<path>`."""


class TrackingUnavailable(Exception):
    """The tracking server did not answer, or failed (5xx, 429): a later try may work."""


class TrackingRefused(Exception):
    """The tracking server answered no (404, 403, ...): the message says what it said,
    `status` is its HTTP status (None when it answered something that is not JSON)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a directory: its name (no path), whether a directory, its size."""

    name: str
    is_dir: bool
    size: int | None


class MlflowArtifacts:
    """The artifact proxy of the tracking server at `base_url` (its root,
    e.g. `http://mlflow:5000`), with a bearer `token` when it needs one. Close it."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=TIMEOUT_S,
            follow_redirects=False,
            transport=transport,
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

    async def list(self, path: str) -> list[Listed]:
        """What the artifact proxy lists under `path` (empty for a file or nothing).
        Raises `TrackingRefused`, `TrackingUnavailable`."""
        body = await self._get_json("/api/2.0/mlflow-artifacts/artifacts", {"path": path})
        return [
            Listed(
                str(f.get("path", "")),
                bool(f.get("is_dir", False)),
                int(f["file_size"]) if f.get("file_size") is not None else None,
            )
            for f in body.get("files", [])
        ]

    async def chunks(self, path: str, chunk_size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
        """The bytes of the artifact file at `path`, streamed in chunks of at most
        `chunk_size`. Raises (when iterated) `TrackingRefused`, `TrackingUnavailable`."""
        url = f"/api/2.0/mlflow-artifacts/artifacts/{quote(path)}"
        try:
            async with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    _check(answer, f"{self.base_url}{url}")
                async for chunk in answer.aiter_bytes(chunk_size):
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
    raise TrackingRefused(
        f"{where} answered {answer.status_code}: {message}".rstrip(": "), answer.status_code
    )
