"""One registry's HTTP session: authentication, retries, counting and error mapping.

Every call of `OciClient` goes through `RegistrySession.send`. It answers 401s
(once per call: a second 401 means the credentials are refused), retries
connection errors, timeouts, 429 and 5xx when the call is safe to repeat, counts
each attempt in `stats`, and turns what is left into `RegistryUnavailable` or
`RegistryAuthFailed`. Other statuses are returned for the caller to judge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from urllib.parse import quote

import httpx

from mlplane_oci.auth import RegistryAuth
from mlplane_oci.challenge import parse_challenges
from mlplane_oci.errors import (
    OciError,
    RegistryAuthFailed,
    RegistryCallFailed,
    RegistryUnavailable,
    describe_call,
)
from mlplane_oci.retry import RetryPolicy, parse_retry_after
from mlplane_oci.stats import RequestKind, RequestStats

logger = logging.getLogger(__name__)

# Bodies larger than this are sent from a generator rather than held by the request.
HELD_BODY_LIMIT = 64 * 1024


def with_query(url: str, name: str, value: str) -> str:
    """`url` with `name=value` appended, keeping the query the registry put there.

    Upload URLs carry the registry's upload state in their query; httpx's `params=`
    would replace it (TESTING.md), so parameters are appended to the string.
    """
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{quote(name, safe='')}={quote(value, safe='')}"


class RegistrySession:
    """HTTP to one registry with its credentials, retry policy and request counts."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None,
        password: str | None,
        retry: RetryPolicy,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.stats = RequestStats()
        # Redirects are followed for blob GETs that registries send to object
        # storage; httpx drops Authorization when the redirect leaves the origin.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=True
        )
        self._auth = RegistryAuth(self._http, self.stats, username=username, password=password)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def resolve(self, response: httpx.Response, location: str | None = None) -> str:
        """The absolute URL of a response's `Location` (registries may send it relative)."""
        target = location if location is not None else response.headers.get("location")
        if not target:
            call = describe_call(response.request.method, str(response.request.url))
            raise RegistryCallFailed(
                f"{call}: {response.status_code} without a Location header",
                call=call,
                http_status=response.status_code,
            )
        return str(response.request.url.join(target))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        method: str,
        url: str,
        *,
        kind: RequestKind,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        """Send until an answer that is not 401/429/5xx, within the retry policy.

        With `stream=True` the caller must close the response. Raises
        `RegistryUnavailable` (no answer, or 429/5xx after the retries; at once when
        not `idempotent`) and `RegistryAuthFailed`.
        """
        call = describe_call(method, url)
        authorization: str | None = None
        auth_known = False
        answered_challenge = False
        failures = 0
        while True:
            retry_after: float | None = None
            try:
                if not auth_known:
                    authorization = await self._auth.authorization(scopes)
                    auth_known = True
                response = await self._send_once(
                    method, url, kind, headers, content, authorization, stream
                )
                if response.status_code == 401:
                    await _discard(response)
                    if answered_challenge:
                        refused = RegistryAuthFailed.from_response(
                            method, url, 401, response.content
                        )
                        raise RegistryAuthFailed(
                            f"{refused.detail} (sent again with the credentials the "
                            "challenge asked for: refused)",
                            call=refused.call,
                            http_status=401,
                            errors=refused.errors,
                        )
                    challenges = parse_challenges(response.headers.get_list("www-authenticate"))
                    authorization = await self._auth.answer(challenges, scopes)
                    answered_challenge = True
                    continue
                if response.status_code != 429 and response.status_code < 500:
                    return response
                await _discard(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                error: OciError = RegistryUnavailable.from_response(
                    method, url, response.status_code, response.content
                )
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                error = RegistryUnavailable(f"{call}: no answer ({reason})", call=call)
            except RegistryUnavailable as exc:  # the token endpoint did not answer
                error = exc
            failures += 1
            if not idempotent or failures >= self.retry.attempts:
                if failures > 1:
                    raise type(error)(
                        f"{error.detail} (after {failures} attempts)",
                        call=error.call,
                        http_status=error.http_status,
                        errors=error.errors,
                    ) from error
                raise error
            delay = self.retry.delay_s(failures, retry_after)
            logger.info(
                "registry call failed, retrying",
                extra={"call": call, "failures": failures, "delay_s": round(delay, 3)},
            )
            self.stats.retries += 1
            await asyncio.sleep(delay)

    async def send_streamed(
        self,
        method: str,
        url: str,
        *,
        kind: RequestKind,
        scopes: Sequence[str],
        headers: Mapping[str, str],
        body: AsyncIterator[bytes],
    ) -> httpx.Response:
        """Send once, the body streamed from `body` (chunked transfer encoding): a
        stream cannot be sent twice, so nothing is retried here.

        Raises `RegistryUnavailable` for no answer, 429 and 5xx, and for a 401 (a
        token that ran out mid-stream), after learning from its challenge what the
        next call sends; `RegistryAuthFailed` when the challenge cannot be met. An
        error `body` raises propagates as it is. Other statuses are returned.
        """
        call = describe_call(method, url)
        all_headers = dict(headers)
        try:
            authorization = await self._auth.authorization(scopes)
            if authorization is not None:
                all_headers["Authorization"] = authorization
            request = self._http.build_request(method, url, headers=all_headers, content=body)
            self.stats.requests[(method, kind)] += 1
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise RegistryUnavailable(f"{call}: no answer ({reason})", call=call) from exc
        if response.status_code == 401:
            await self._auth.answer(
                parse_challenges(response.headers.get_list("www-authenticate")), scopes
            )
            raise RegistryUnavailable(
                f"{call}: 401, the registry asked for credentials again mid-stream",
                call=call,
                http_status=401,
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise RegistryUnavailable.from_response(
                method, url, response.status_code, response.content
            )
        return response

    async def _send_once(
        self,
        method: str,
        url: str,
        kind: RequestKind,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        authorization: str | None,
        stream: bool,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if authorization is not None:
            all_headers["Authorization"] = authorization
        body: bytes | AsyncIterator[bytes] | None = content
        if content is not None and len(content) > HELD_BODY_LIMIT:
            # httpx's request and response refer to each other, so a request holding
            # its body keeps it until the cycle collector runs: with 16 MiB chunks
            # that was hundreds of MB. A generator lets go of the bytes once sent.
            body = _once(content)
            all_headers["Content-Length"] = str(len(content))
        request = self._http.build_request(method, url, headers=all_headers, content=body)
        self.stats.requests[(method, kind)] += 1
        return await self._http.send(request, stream=stream)


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _discard(response: httpx.Response) -> None:
    """Read (for the error body) and release a response that will not be returned."""
    try:
        await response.aread()
    finally:
        await response.aclose()
