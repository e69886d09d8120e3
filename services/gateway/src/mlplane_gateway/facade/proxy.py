"""Forwarding one request to a service, and the service's answer back to the caller.

What goes to the service: the method, the path under the service's base URL,
the query string as sent, the body (streamed, or buffered when the request may
be retried), and only the request headers on `headers.FORWARDED_REQUEST_HEADERS`. So the
caller's `Authorization` and cookies never leave the gateway, hop-by-hop headers
stay on their hop, and `X-Mlplane-*` headers a caller made up are never seen by
a service: the gateway sets `X-Mlplane-Identity` (signed), `X-Mlplane-Team` and
`X-Mlplane-Principal` from the authenticated caller. The trace context of the
gateway's span goes along as `traceparent`.

What comes back: successful answers go through untouched (raw bytes, content
encoding kept): read whole when their Content-Length is small, else streamed.
Error answers are problem+json: a service's problem document keeps its members
with `instance` set to the gateway's path; any other error body becomes one
(status kept; `detail` taken from a 4xx JSON body's `detail` or `message`, never
from a 5xx body, which may hold internals).
The service unreachable → 502, too slow → 504, its breaker open → 503 with
`Retry-After`. Each names the service in a `service` member.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from mlplane_runtime.problem import PROBLEM_JSON
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from mlplane_gateway.facade.errors import (
    INVALID_PATH,
    UPSTREAM_ERROR,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    UPSTREAM_UNREACHABLE,
    ErrorRenderer,
    render_problem,
)
from mlplane_gateway.facade.headers import request_headers, response_headers
from mlplane_gateway.facade.identity import Caller, IdentitySigner
from mlplane_gateway.facade.retry import is_retryable_request, is_retryable_status
from mlplane_gateway.facade.upstreams import Upstream

MAX_BUFFERED_BODY_BYTES: Final = 1024 * 1024
"""Larger request bodies are streamed, and therefore never retried."""
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
"""Error bodies are read this far to re-render them; past it, only the status counts."""
MAX_WHOLE_ANSWER_BYTES: Final = 64 * 1024
"""Successful answers this small (by Content-Length) are read whole and sent in one
piece: a streamed answer costs a task group and a send per chunk, most of a small
answer's cost at the gateway. Larger or unsized answers stream through."""
_RELAY_CHUNK_BYTES: Final = 64 * 1024
_MAX_DETAIL_CHARS: Final = 1000
BREAKER_FAILURE_STATUSES: Final = frozenset({502, 503, 504})
"""The answers that say the service (or what is in front of it) is unwell: only these,
connection failures and timeouts count towards opening its breaker."""
_CONNECTION_FAILURES: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
"""Connect errors, broken connections (aiohttp's timeouts are TimeoutErrors too)."""


def service_path(path: str) -> str | None:
    """`path` (decoded, relative to the service) percent-encoded again; None if it climbs.

    `.` and `..` segments are refused rather than resolved: the service, or a
    server in front of it, could resolve them out of the service's mount.
    """
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        return None
    return quote(path, safe="/:@!$&'()*+,;=-._~")


async def forward(
    request: Request,
    upstream: Upstream,
    path: str,
    *,
    caller: Caller,
    signer: IdentitySigner,
    public_base: str,
    render: ErrorRenderer = render_problem,
) -> Response:
    """Send `request` to `upstream` at `path` (decoded, relative to its base URL) and answer.

    `public_base` is the gateway path the service's base URL is exposed at (for
    `Location` headers). Never raises for anything the service does; errors come
    back as `render` writes them. The caller going away mid-call cancels it.
    """
    instance = request.url.path
    encoded = service_path(path)
    if encoded is None:
        return render(
            400,
            title="Invalid path",
            detail="path segments '.' and '..' are not allowed",
            problem_type=INVALID_PATH,
            instance=instance,
        )
    headers = request_headers(request, upstream, caller, signer)
    retryable, content = await _request_content(request, headers)
    url = upstream.url_for(encoded, request.scope.get("query_string", b""))
    attempt = 0
    while True:
        attempt += 1
        permit = upstream.breaker.admit()
        if permit is None:
            seconds = upstream.breaker.retry_after_s()
            return render(
                503,
                title="Service unavailable",
                detail=f"the {upstream.name} service is failing; calls to it are paused",
                problem_type=UPSTREAM_UNAVAILABLE,
                instance=instance,
                headers={"Retry-After": str(seconds)},
                extensions={"service": upstream.name},
            )
        may_retry = retryable and upstream.retries.allows_another(attempt)
        try:
            response = await _send(upstream, request.method, url, headers, content)
        except TimeoutError:
            upstream.breaker.record_failure(permit)
            return render(
                504,
                title="Gateway timeout",
                detail=f"the {upstream.name} service did not answer in time",
                problem_type=UPSTREAM_TIMEOUT,
                instance=instance,
                extensions={"service": upstream.name},
            )
        except aiohttp.ClientError as exc:
            if isinstance(exc, _CONNECTION_FAILURES):
                upstream.breaker.record_failure(permit)
            else:
                # Not the connection: e.g. an answer aiohttp could not parse.
                upstream.breaker.release(permit)
            if may_retry:
                await asyncio.sleep(upstream.retries.delay_s(attempt))
                continue
            return render(
                502,
                title="Bad gateway",
                detail=f"the {upstream.name} service could not be reached",
                problem_type=UPSTREAM_UNREACHABLE,
                instance=instance,
                extensions={"service": upstream.name},
            )
        except BaseException:
            upstream.breaker.release(permit)
            raise
        status = response.status
        if status in BREAKER_FAILURE_STATUSES:
            upstream.breaker.record_failure(permit)
        else:
            # Any other answer, 500 included, shows the service is up: a 500 is one
            # request's failure, which any caller can provoke (a crafted query) and
            # which must not switch the service off for every team.
            upstream.breaker.record_success(permit)
        if may_retry and is_retryable_status(status):
            response.release()
            await asyncio.sleep(upstream.retries.delay_s(attempt))
            continue
        if status >= 400:
            return await _error_answer(response, upstream, instance, render)
        if _is_small(response):
            try:
                return await _whole_answer(response, upstream, public_base)
            except (aiohttp.ClientError, TimeoutError):
                # The service went away mid-answer: nothing was sent to the caller yet.
                return render(
                    502,
                    title="Bad gateway",
                    detail=f"the {upstream.name} service broke off its answer",
                    problem_type=UPSTREAM_UNREACHABLE,
                    instance=instance,
                    extensions={"service": upstream.name},
                )
        return _streamed_answer(response, upstream, public_base)


async def _send(
    upstream: Upstream,
    method: str,
    url: URL,
    headers: dict[str, str],
    content: bytes | AsyncIterator[bytes] | None,
) -> aiohttp.ClientResponse:
    """The service's answer, its body not yet read (the caller releases it)."""
    return await upstream.client.request(
        method, url, headers=headers, data=content, allow_redirects=False
    )


async def _request_content(
    request: Request, headers: dict[str, str]
) -> tuple[bool, bytes | AsyncIterator[bytes] | None]:
    """(retryable, the body to send): small bodies of retryable requests are read once;
    None for no body at all (no Content-Length: 0 is made up for a GET)."""
    length = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    known_small = length is not None and length.isdigit() and int(length) <= MAX_BUFFERED_BODY_BYTES
    if is_retryable_request(request.method, request.headers) and (
        known_small or (length is None and not chunked)
    ):
        body = await request.body()
        if length is None and body:
            headers["content-length"] = str(len(body))
        return True, body if body or length is not None else None
    return False, request.stream()


def _is_small(response: aiohttp.ClientResponse) -> bool:
    declared = response.headers.get("content-length", "")
    return declared.isdigit() and int(declared) <= MAX_WHOLE_ANSWER_BYTES


async def _whole_answer(
    response: aiohttp.ClientResponse, upstream: Upstream, public_base: str
) -> Response:
    """The answer read whole (raw bytes, encoding kept) and sent in one piece."""
    try:
        body = await response.read()
    finally:
        response.release()
    answer = Response(content=body, status_code=response.status)
    answer.raw_headers = response_headers(response, upstream, public_base)
    return answer


def _streamed_answer(
    response: aiohttp.ClientResponse, upstream: Upstream, public_base: str
) -> Response:
    answer = StreamingResponse(
        _relay(response),
        status_code=response.status,
        background=BackgroundTask(response.release),
    )
    answer.raw_headers = response_headers(response, upstream, public_base)
    return answer


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(_RELAY_CHUNK_BYTES):
            yield chunk
    finally:
        # Back to the pool when read to the end, else the connection is closed.
        response.release()


async def _error_answer(
    response: aiohttp.ClientResponse, upstream: Upstream, instance: str, render: ErrorRenderer
) -> Response:
    status = response.status
    try:
        body = await _read_bounded(response, MAX_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        body = None
    finally:
        response.release()
    headers = {
        name: response.headers[name]
        for name in ("retry-after", "www-authenticate", "etag")
        if name in response.headers
    }
    document = _json_object(body)
    is_problem = response.headers.get("content-type", "").split(";")[0].strip() == PROBLEM_JSON
    extensions: dict[str, Any] = {"service": upstream.name}
    if is_problem and document is not None:
        extensions = {
            **{k: v for k, v in document.items() if k not in ("type", "title", "detail")},
            **extensions,
        }
        return render(
            status,
            title=_text(document.get("title")),
            detail=_text(document.get("detail")),
            problem_type=_text(document.get("type")) or "about:blank",
            instance=instance,
            headers=headers or None,
            extensions=extensions,
        )
    detail: str | None = None
    if status < 500 and document is not None:
        detail = _text(document.get("detail")) or _text(document.get("message"))
        # MLflow's errors carry the code its client turns back into an exception.
        if isinstance(document.get("error_code"), str):
            extensions["error_code"] = document["error_code"]
    return render(
        status,
        title=None,
        detail=detail or f"the {upstream.name} service answered {status}",
        problem_type=UPSTREAM_ERROR,
        instance=instance,
        headers=headers or None,
        extensions=extensions,
    )


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The decoded body (gzip and deflate undone), or None past `limit` bytes, either
    as sent or decoded (the rest is not read), or in an encoding not known here."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return _decoded(b"".join(chunks), response.headers.get("content-encoding", ""), limit)


def _decoded(body: bytes, encoding: str, limit: int) -> bytes | None:
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip", "deflate"):
        return None
    # 16 + MAX_WBITS reads gzip; MAX_WBITS a zlib stream (what HTTP calls deflate).
    wbits = zlib.MAX_WBITS if coding == "deflate" else 16 + zlib.MAX_WBITS
    try:
        decoder = zlib.decompressobj(wbits)
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error:
        return None
    return None if len(decoded) > limit else decoded


def _json_object(body: bytes | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:_MAX_DETAIL_CHARS]
