"""The services behind the facade: one pooled HTTP client, retry policy and breaker each.

Built from a mapping of service name to base URL, where the base URL includes
the service's mount (`http://registry:8080/registry`, or in one process
`http://127.0.0.1:8080/registry`). Clients are built when the gateway starts
(inside its lifespan) and closed when it stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from mlplane_gateway.facade.breaker import CircuitBreaker
from mlplane_gateway.facade.retry import RetryPolicy


@dataclass(frozen=True)
class UpstreamLimits:
    """How the gateway talks to every service (the settings' values)."""

    timeout_s: float = 30.0
    """Longest wait for the service to answer (read, write and pool waits)."""
    connect_timeout_s: float = 3.0
    retries: int = 2
    """Tries after the first, for retryable requests only."""
    retry_base_delay_s: float = 0.05
    retry_max_delay_s: float = 1.0
    failure_threshold: int = 5
    cool_down_s: float = 30.0
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry_s: float = 30.0


@dataclass
class Upstream:
    """One service: where it is, how long to wait, how often to retry, its breaker."""

    name: str
    base_url: httpx.URL
    timeout_s: float
    retries: RetryPolicy
    breaker: CircuitBreaker
    client: httpx.AsyncClient = field(repr=False)

    def url_for(self, raw_path: str, raw_query: bytes = b"") -> httpx.URL:
        """The service's URL for `raw_path` (percent-encoded, relative to the base) and query."""
        base = self.base_url.raw_path.split(b"?", 1)[0].rstrip(b"/")
        target = base + b"/" + raw_path.lstrip("/").encode("ascii")
        if raw_query:
            target += b"?" + raw_query
        return self.base_url.copy_with(raw_path=target)


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstreams:
        """One client per service in `base_urls` (name → http(s) URL).

        `clock` drives the breakers (default: monotonic time); `transport` replaces
        the network (tests). Raises ValueError for a URL that is not http(s).
        """
        settings = limits or UpstreamLimits()
        built: dict[str, Upstream] = {}
        for name, raw_url in base_urls.items():
            url = httpx.URL(raw_url)
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"upstream {name!r}: {raw_url!r} is not an http(s) URL")
            breaker = CircuitBreaker(settings.failure_threshold, settings.cool_down_s)
            if clock is not None:
                breaker.clock = clock
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=settings.max_connections,
                    max_keepalive_connections=settings.max_keepalive_connections,
                    keepalive_expiry=settings.keepalive_expiry_s,
                ),
                # The facade forwards what the service answers, redirects included.
                follow_redirects=False,
                # Proxies from the environment would see the forwarded identity.
                trust_env=False,
                transport=transport,
            )
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
                client=client,
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
            await upstream.client.aclose()

    async def __aenter__(self) -> Upstreams:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
