"""uvicorn's httptools protocol with the deadlines and caps a public server needs.

uvicorn closes an idle keep-alive connection, but a connection that never sends a
complete request, or sends a body a byte a minute, stays open forever: a few
thousand of them hold the server's memory and file descriptors. This protocol
closes a connection whose request headers are not complete `header_timeout_s`
after it opened (or after the request's first byte), whose body sends nothing
for `body_timeout_s` while the app waits for it, or whose headers pass
`max_header_bytes` (431); past `max_connections` open connections a new one is
answered 503 and closed at once. Under `mlplane serve --workers N` it also keeps
the workers' shares of connections even (`balance`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mlplane_runtime.platform.balance import ConnectionBalancer


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take and how much it may hold (see the module)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 2048
    max_header_bytes: int = 64 * 1024


def _answer(status: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(status)).encode() + b"\r\nconnection: close\r\n\r\n" + status
    )


REQUEST_TIMEOUT: Final = _answer(b"408 Request Timeout")
TOO_MANY_CONNECTIONS: Final = _answer(b"503 Service Unavailable")
HEADERS_TOO_LARGE: Final = _answer(b"431 Request Header Fields Too Large")


def limited_protocol(
    limits: ConnectionLimits, balancer: ConnectionBalancer | None = None
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give `uvicorn.Config(http=...)` to serve under `limits`,
    handing connections to other workers through `balancer` when given."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"limits": limits, "balancer": balancer},
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` enforcing `limits`; build a configured one with `limited_protocol`."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    balancer: ClassVar[ConnectionBalancer | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0
        self.adopted = False
        """Handed over by another worker: never handed on again."""
        self._given_away = False

    # -- connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self._hand_over(transport):
            return
        super().connection_made(transport)
        if self.balancer is not None:
            self.balancer.publish(len(self.connections))
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("refused a connection: %d open", len(self.connections) - 1)
            self._close(TOO_MANY_CONNECTIONS)
            return
        # Covers the client that connects and sends nothing at all.
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._given_away:
            return  # given to another worker before it was this one's
        self._cancel_header_deadline()
        self._cancel_body_deadline()
        super().connection_lost(exc)
        if self.balancer is not None:
            self.balancer.publish(len(self.connections))

    def _hand_over(self, transport: asyncio.Transport) -> bool:
        """True when the connection went to a less loaded worker (nothing was read yet:
        the transport starts reading after `connection_made`)."""
        balancer = self.balancer
        if balancer is None or self.adopted:
            return False
        target = balancer.target(len(self.connections))
        connection = transport.get_extra_info("socket")
        if target is None or connection is None:
            return False
        if not balancer.hand_over(target, connection.fileno()):
            return False
        self._given_away = True
        transport.abort()  # closes this worker's copy; the other's keeps the connection
        return True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._close(HEADERS_TOO_LARGE)

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_deadline()
        super().on_headers_complete()
        self._arm_body_deadline()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm_body_deadline()

    def on_message_complete(self) -> None:
        self._cancel_body_deadline()
        super().on_message_complete()

    # -- deadlines ---------------------------------------------------------------------

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout_s, self._headers_too_slow
        )

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        # Nothing sent at all: just close; half a request: say why.
        self._close(REQUEST_TIMEOUT if self._reading_headers else b"")

    def _arm_body_deadline(self) -> None:
        self._cancel_body_deadline()
        self._body_deadline = self.loop.call_later(self.limits.body_timeout_s, self._body_stalled)

    def _cancel_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _body_stalled(self) -> None:
        self._body_deadline = None
        if self.flow is not None and self.flow.read_paused:
            # The app is not reading yet: the client is not the one stalling.
            self._arm_body_deadline()
            return
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        self._close(b"" if started else REQUEST_TIMEOUT)

    def _close(self, answer: bytes) -> None:
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(answer)
        self.transport.close()
