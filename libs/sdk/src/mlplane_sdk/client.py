"""A small synchronous client of mlplane's HTTP API, the one the `mlplane` CLI uses.

It speaks to the gateway (`mlplane up` serves it on 127.0.0.1:8080) with an API key:
services answer only the identity the gateway signs for them, so every call goes
through the gateway's `/v1/<service>/...` routes (the gateway's own dead letters
are at `/gateway/dead-letters`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    # Imported where used: the module pulls in FastAPI, a second of every CLI command's
    # start that only the dead-letter commands need.
    from mlplane_runtime.dead_letters_api import DeadLetterList

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 10.0
GATEWAY = "gateway"

_Answer = TypeVar("_Answer", bound=BaseModel)


class MlplaneClientError(Exception):
    """Base of the client's errors; `str()` is a sentence fit for a person."""


class MlplaneUnreachable(MlplaneClientError):
    """No answer from the platform (not running, wrong URL, network down)."""


class MlplaneApiError(MlplaneClientError):
    """The platform answered with an error; `problem` is its problem+json document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "no detail given"
        super().__init__(f"HTTP {status}: {detail}")


class MlplaneClient:
    """The platform's HTTP API at `base_url`, called with `api_key` (an `mlp_...` key or
    an OIDC access token). Use as a context manager, or `close()` it."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, transport=transport, headers=headers
        )
        # Presigned URLs carry their own authority: the API key never goes with them.
        self._storage = httpx.Client(timeout=max(timeout_s, 300.0), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()
        self._storage.close()

    def dead_letters(self, service: str, *, limit: int = 100) -> DeadLetterList:
        """Up to `limit` messages in `service`'s dead-letter queue, oldest first.

        Raises MlplaneUnreachable, or MlplaneApiError (401 without a valid key, 403
        without the `admin` scope, 404 for an unknown service, 503 when the queue
        cannot be read).
        """
        from mlplane_runtime.dead_letters_api import DeadLetterList

        response = self._request(
            "GET", f"{_service_path(service)}/dead-letters", params={"limit": limit}
        )
        return _parsed(DeadLetterList, response)

    def replay_dead_letters(self, service: str, ids: Sequence[str] | None = None) -> int:
        """Move `service`'s dead letters (all, or those with `ids`) back to its queue.

        Returns how many were replayed. Raises MlplaneUnreachable or MlplaneApiError.
        """
        from mlplane_runtime.dead_letters_api import ReplayResult

        body = None if ids is None else {"ids": list(ids)}
        response = self._request("POST", f"{_service_path(service)}/dead-letters/replay", json=body)
        return _parsed(ReplayResult, response).replayed

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of `method path` (None for an empty one); `kwargs` go to httpx
        (`json`, `params`, `headers`). Raises MlplaneUnreachable or MlplaneApiError."""
        response = self._request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise MlplaneClientError(f"unexpected answer from {response.request.url}") from exc

    def stream_lines(self, path: str, **kwargs: Any) -> Iterator[str]:
        """The lines of a streamed answer (server-sent events), as they arrive; no read
        timeout, since a quiet stream is not a dead one. Raises as `call` does."""
        timeout = httpx.Timeout(self._http.timeout.connect or DEFAULT_TIMEOUT_S, read=None)
        try:
            with self._http.stream("GET", path, timeout=timeout, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise MlplaneApiError(response.status_code, _problem(response))
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise MlplaneUnreachable(
                f"cannot reach mlplane at {self.base_url} ({type(exc).__name__}); "
                "is `mlplane up` running there?"
            ) from exc

    def put_bytes(self, url: str, content: bytes) -> str:
        """PUT `content` to a presigned `url` (no API key sent); the ETag it answers.

        Raises MlplaneUnreachable, or MlplaneApiError when storage refuses it."""
        try:
            response = self._storage.put(url, content=content)
        except httpx.TransportError as exc:
            raise MlplaneUnreachable(f"cannot reach object storage ({type(exc).__name__})") from exc
        if response.is_error:
            raise MlplaneApiError(response.status_code, _problem(response))
        return str(response.headers.get("etag", ""))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise MlplaneUnreachable(
                f"cannot reach mlplane at {self.base_url} ({type(exc).__name__}); "
                "is `mlplane up` running there?"
            ) from exc
        if response.is_error:
            raise MlplaneApiError(response.status_code, _problem(response))
        return response


def _service_path(service: str) -> str:
    """Where `service`'s routes are reached through the gateway."""
    return f"/{GATEWAY}" if service == GATEWAY else f"/v1/{service}"


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    return {"status": response.status_code, "title": response.reason_phrase}


def _parsed(model: type[_Answer], response: httpx.Response) -> _Answer:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise MlplaneClientError(
            f"unexpected answer from {response.request.url}: {exc.error_count()} invalid field(s)"
        ) from exc
