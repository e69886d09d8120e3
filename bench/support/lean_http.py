"""The load generator's HTTP client: aiohttp, read whole answers, one keep-alive connection
per concurrent caller.

The generator shares this machine's CPUs with the server it measures; aiohttp costs
about a third of httpx's CPU per request, which leaves more of the machine to the
server, whichever it is (both servers are driven by this same client).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

# What a call may raise besides an answer: the generator counts these as errors.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class HttpRefused(Exception):
    """A request the server answered with a status outside 2xx."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if not self.is_success:
            raise HttpRefused(f"HTTP {self.status}: {self.body[:300]!r}")


class LeanHttp:
    """`async with LeanHttp(concurrency, headers) as http: await http.get(url)`."""

    def __init__(
        self,
        concurrency: int,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """`headers` go with every request; a callable is asked for them per request
        (tokens that expire during a run)."""
        self._concurrency = concurrency
        self._per_request = headers if callable(headers) else None
        self._headers = {} if callable(headers) else dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LeanHttp:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> Answer:
        assert self._session is not None, "use LeanHttp as an async context manager"
        headers = None if self._per_request is None else self._per_request()
        async with self._session.request(
            method, url, params=params, json=json, headers=headers
        ) as response:
            return Answer(response.status, await response.read())

    async def get(self, url: str, *, params: Mapping[str, str | int] | None = None) -> Answer:
        return await self.request("GET", url, params=params)

    async def post(self, url: str, *, json: Any = None) -> Answer:
        return await self.request("POST", url, json=json)

    async def put(self, url: str, *, json: Any = None) -> Answer:
        return await self.request("PUT", url, json=json)
