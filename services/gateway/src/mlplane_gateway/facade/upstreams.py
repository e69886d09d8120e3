"""The services behind the facade: one pooled HTTP client, retry policy and breaker each.

Built from a mapping of service name to base URL, where the base URL includes
the service's mount (`http://registry:8080/registry`, or in one process
`http://127.0.0.1:8080/registry`). The client is aiohttp's: per call it costs a
fraction of httpx's (whose pool polls every idle connection on every request),
and the facade makes one call per request. A client is made on first use, on the
running loop, and closed when the gateway stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from mlplane_gateway.facade.breaker import BreakerChange, BreakerState, CircuitBreaker
from mlplane_gateway.facade.retry import RetryPolicy

_QUERY_SAFE: Final = "!$&'()*+,;=:@/?%-._~"
_log = logging.getLogger("mlplane.gateway.facade")


@dataclass(frozen=True)
class UpstreamLimits:
    """How the gateway talks to every service (the settings' values)."""

    timeout_s: float = 30.0
    """Longest wait for a connection from the pool, and between two reads of an answer."""
    connect_timeout_s: float = 3.0
    retries: int = 2
    """Tries after the first, for retryable requests only."""
    retry_base_delay_s: float = 0.05
    retry_max_delay_s: float = 1.0
    failure_threshold: int = 5
    cool_down_s: float = 30.0
    """The longest a breaker stays open before its next trial."""
    first_cool_down_s: float = 2.0
    """The first cool-down after closing; doubles with each failed trial."""
    max_connections: int = 100
    max_keepalive_connections: int = 20
    """Not used by aiohttp's pool: idle connections are kept up to `max_connections`,
    each for `keepalive_expiry_s`."""
    keepalive_expiry_s: float = 30.0


@dataclass
class Upstream:
    """One service: where it is, how long to wait, how often to retry, its breaker."""

    name: str
    base_url: URL
    timeout_s: float
    retries: RetryPolicy
    breaker: CircuitBreaker
    limits: UpstreamLimits = field(default_factory=UpstreamLimits, repr=False)
    _client: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _prefix: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        base = self.base_url.with_query(None).with_fragment(None)
        self._prefix = str(base).rstrip("/")

    @property
    def client(self) -> aiohttp.ClientSession:
        """The service's pooled client (made on first use: aiohttp wants a running loop)."""
        if self._client is None or self._client.closed:
            limits = self.limits
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=limits.max_connections,
                    limit_per_host=0,
                    keepalive_timeout=limits.keepalive_expiry_s,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=limits.timeout_s,
                    sock_connect=limits.connect_timeout_s,
                    sock_read=limits.timeout_s,
                ),
                # Answers go through as the service encoded them.
                auto_decompress=False,
                # Proxies from the environment would see the forwarded identity.
                trust_env=False,
                # Only what the caller sent: an Accept-Encoding it did not send would
                # get it an encoding it never asked for (answers are relayed raw).
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._client

    def url_for(self, raw_path: str, raw_query: bytes = b"") -> URL:
        """The service's URL for `raw_path` (percent-encoded, relative to the base) and query."""
        target = self._prefix + "/" + raw_path.lstrip("/")
        if raw_query:
            # As sent, escapes kept; only bytes that may not appear raw get escaped.
            target += "?" + quote(raw_query, safe=_QUERY_SAFE)
        return URL(target, encoded=True)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class Upstreams:
    """The services the facade reaches, by name. Use as `async with Upstreams.build(...)`."""

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self._upstreams = dict(upstreams)

    @classmethod
    def build(
        cls,
        base_urls: Mapping[str, str],
        limits: UpstreamLimits | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> Upstreams:
        """One client per service in `base_urls` (name → http(s) URL).

        `clock` drives the breakers (default: monotonic time). Raises ValueError
        for a URL that is not http(s).
        """
        settings = limits or UpstreamLimits()
        built: dict[str, Upstream] = {}
        for name, raw_url in base_urls.items():
            try:
                url = URL(raw_url)
            except ValueError as exc:
                raise ValueError(f"upstream {name!r}: {raw_url!r} is not an http(s) URL") from exc
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"upstream {name!r}: {raw_url!r} is not an http(s) URL")
            breaker = CircuitBreaker(
                settings.failure_threshold,
                settings.cool_down_s,
                first_cool_down_s=settings.first_cool_down_s,
                on_change=_breaker_logger(name),
            )
            if clock is not None:
                breaker.clock = clock
            built[name] = Upstream(
                name=name,
                base_url=url,
                timeout_s=settings.timeout_s,
                retries=RetryPolicy(
                    attempts=settings.retries + 1,
                    base_delay_s=settings.retry_base_delay_s,
                    max_delay_s=settings.retry_max_delay_s,
                ),
                breaker=breaker,
                limits=settings,
            )
        return cls(built)

    def get(self, name: str) -> Upstream | None:
        return self._upstreams.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._upstreams

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._upstreams.values())

    async def aclose(self) -> None:
        """Close every client (their pooled connections)."""
        for upstream in self._upstreams.values():
            await upstream.aclose()

    async def __aenter__(self) -> Upstreams:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _breaker_logger(service: str) -> Callable[[BreakerChange], None]:
    """Logs one line when `service`'s breaker opens and one when it closes again."""

    def log(change: BreakerChange) -> None:
        if change.after is BreakerState.OPEN:
            _log.warning(
                "the %s service's circuit breaker opened: calls fail fast for %g s",
                service,
                change.cool_down_s,
                extra={"service": service, "breaker": "open", "cool_down_s": change.cool_down_s},
            )
        elif change.after is BreakerState.CLOSED:
            _log.info(
                "the %s service's circuit breaker closed after %.1f s",
                service,
                change.open_for_s,
                extra={
                    "service": service,
                    "breaker": "closed",
                    "open_for_s": round(change.open_for_s, 3),
                },
            )

    return log
