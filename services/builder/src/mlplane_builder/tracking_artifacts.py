"""A team's artifacts on the MLflow tracking server, as the builder reads them: through
its artifact proxy (`mlplane_runtime.mlflow_artifacts`, the registry's client too),
only under the team's tracking locations (`domain.tracking_locations`).

A directory (an MLflow model) is listed recursively, so the builder lays out and checks
what the registry hashed; a file is streamed in chunks. What the server says is sorted
into build failures: 404 is artifact_missing, another refusal artifact_unreadable,
no answer (or 5xx) storage_unavailable, which a later try may get past.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from mlplane_runtime.mlflow_artifacts import MlflowArtifacts, TrackingRefused, TrackingUnavailable

from mlplane_builder.domain import failures
from mlplane_builder.domain.artifact_tree import too_many_files
from mlplane_builder.domain.tracking_locations import tracking_allows, tracking_path


class TrackingArtifacts:
    """The tracking server at `base_url`; `locations`: team -> `mlflow-artifacts:/<prefix>/`
    of it. `open()` before reading, `close()` after."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        locations: Mapping[str, Sequence[str]],
        chunk_size: int,
        max_files: int,
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._locations = {team: tuple(found) for team, found in locations.items()}
        self._chunk_size = chunk_size
        self._max_files = max_files
        self._server: MlflowArtifacts | None = None

    def open(self) -> None:
        self._server = MlflowArtifacts(self._base_url, self._token)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    def allows(self, uri: str, *, team: str) -> bool:
        """Whether `uri` lies under one of `team`'s tracking locations. No I/O."""
        return tracking_allows(uri, self._locations.get(team, ()))

    def _open_server(self, uri: str) -> tuple[MlflowArtifacts, str]:
        path = tracking_path(uri)
        if path is None:
            raise failures.artifact_unreadable(uri, "it is not mlflow-artifacts:/<path>")
        if self._server is None:
            raise failures.internal(f"the tracking server is not open while reading {uri}")
        return self._server, path

    async def listing(self, uri: str) -> list[tuple[str, int]]:
        """The files below the directory `uri` (relative path, size; -1 when the server
        gives none). Raises `BuildFailure`."""
        server, root = self._open_server(uri)
        listed: list[tuple[str, int]] = []
        pending = [""]
        try:
            while pending:
                below = pending.pop()
                for entry in await server.list(f"{root}/{below}".rstrip("/")):
                    relative = f"{below}/{entry.name}".lstrip("/")
                    if entry.is_dir:
                        pending.append(relative)
                    elif len(listed) >= self._max_files:
                        raise too_many_files(uri, self._max_files)
                    else:
                        listed.append((relative, -1 if entry.size is None else entry.size))
        except (TrackingRefused, TrackingUnavailable) as exc:
            raise _failure(uri, exc) from exc
        return listed

    async def chunks(self, uri: str) -> AsyncIterator[bytes]:
        """The bytes of the file `uri`. Raises (when iterated) `BuildFailure`."""
        server, path = self._open_server(uri)
        chunks = server.chunks(path, self._chunk_size)
        try:
            async for chunk in chunks:
                yield chunk
        except (TrackingRefused, TrackingUnavailable) as exc:
            raise _failure(uri, exc) from exc
        finally:
            await chunks.aclose()


def _failure(uri: str, exc: TrackingRefused | TrackingUnavailable) -> failures.BuildFailure:
    if isinstance(exc, TrackingUnavailable):
        return failures.storage_unavailable(uri, str(exc))
    if exc.status == 404:
        return failures.artifact_missing(uri)
    return failures.artifact_unreadable(
        uri,
        f"{exc}; check MLPLANE_BUILDER_MLFLOW_TRACKING_TOKEN and that the tracking server "
        "serves artifacts (mlflow server --serve-artifacts)",
    )
