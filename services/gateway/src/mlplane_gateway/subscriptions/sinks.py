"""Checking a sink URL against the addresses its host resolves to now.

Run when a subscription is created and again before every delivery, so a host
re-pointed at an internal address later is refused then too. The host is resolved
once per delivery: the delivery connects to the address that was checked (see
`delivery.pinned_request`), so a second lookup answering otherwise (DNS rebinding)
is never made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Sequence

from mlplane_gateway.subscriptions.domain import (
    InvalidSink,
    IpNetwork,
    SinkTarget,
    check_sink_addresses,
    parse_sink_url,
)

RESOLVE_TIMEOUT_S = 5.0


class SinkChecker:
    """Resolves sink hosts and judges them against `allowlist` (CIDRs from settings)."""

    def __init__(
        self, allowlist: Sequence[IpNetwork] = (), *, timeout_s: float = RESOLVE_TIMEOUT_S
    ) -> None:
        self.allowlist = tuple(allowlist)
        self._timeout_s = timeout_s

    async def __call__(self, url: str) -> SinkTarget:
        """The checked target; InvalidSink naming why the URL may not be called."""
        target = parse_sink_url(url)
        addresses = await self._resolve(target)
        check_sink_addresses(target, addresses, self.allowlist)
        return dataclasses.replace(target, addresses=tuple(addresses))

    async def _resolve(self, target: SinkTarget) -> list[str]:
        try:
            async with asyncio.timeout(self._timeout_s):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    target.host, None, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise InvalidSink(f"the sink host {target.host!r} does not resolve: {exc}") from None
        return sorted({str(info[4][0]) for info in infos})
