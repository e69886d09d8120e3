"""Which headers cross the facade, both ways.

To a service go only the request headers on `FORWARDED_REQUEST_HEADERS`, less those
the sender marked hop-by-hop: the caller's `Authorization` and cookies never leave the
gateway, and `X-Mlplane-*` headers a caller made up are never seen by a service. The
gateway sets `X-Mlplane-Identity` (signed), `X-Mlplane-Team` and `X-Mlplane-Principal`
from the authenticated caller, the `X-Forwarded-*` headers and the trace context.
Back come the service's headers less hop-by-hop ones and those the gateway's server
writes itself, a `Location` into the service rewritten to the gateway's path.
"""

from __future__ import annotations

import re
from typing import Final

import aiohttp
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER, PRINCIPAL_HEADER, TEAM_HEADER
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request
from yarl import URL

from mlplane_gateway.facade.identity import Caller, IdentitySigner
from mlplane_gateway.facade.upstreams import Upstream

FORWARDED_REQUEST_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-encoding",
        "content-length",
        "content-type",
        "idempotency-key",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "prefer",
        "range",
        "traceparent",
        "tracestate",
        "user-agent",
        "x-request-id",
    }
)
HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The gateway's server writes its own; a second copy would be sent otherwise.
_OWN_RESPONSE_HEADERS: Final = frozenset({"date", "server"})
_DROPPED_RESPONSE_HEADERS: Final = frozenset(
    name.encode("latin-1") for name in HOP_BY_HOP_HEADERS | _OWN_RESPONSE_HEADERS
)
_TEAM = re.compile(DNS_LABEL_PATTERN)
_PROPAGATOR = TraceContextTextMapPropagator()


def request_headers(
    request: Request, upstream: Upstream, caller: Caller, signer: IdentitySigner
) -> dict[str, str]:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name in FORWARDED_REQUEST_HEADERS
        and name not in connection_tokens(request.headers.getlist("connection"))
    }
    team = caller.team
    if team is None:
        # The operator acts for every team and names the one it acts for.
        asked = request.headers.get(TEAM_HEADER, "")
        team = asked if len(asked) <= 63 and _TEAM.match(asked) else None
    if team is not None:
        headers[TEAM_HEADER] = team
    headers[PRINCIPAL_HEADER] = caller.id
    headers[IDENTITY_HEADER] = signer.token_for(
        audience=upstream.name, principal=caller.id, team=team, scopes=caller.scopes
    )
    client = request.client
    forwarded_for = request.headers.get("x-forwarded-for")
    if client is not None:
        forwarded_for = f"{forwarded_for}, {client.host}" if forwarded_for else client.host
    if forwarded_for:
        headers["x-forwarded-for"] = forwarded_for
    headers["x-forwarded-proto"] = request.url.scheme
    if "host" in request.headers:
        headers["x-forwarded-host"] = request.headers["host"]
    # Within a gateway span, the service continues it (else the caller's context goes on).
    _PROPAGATOR.inject(headers)
    return headers


def connection_tokens(values: list[str]) -> frozenset[str]:
    """Header names the sender marked hop-by-hop in `Connection` (RFC 9110 §7.6.1)."""
    listed = ",".join(values)
    return frozenset(token.strip().lower() for token in listed.split(",") if token.strip())


def response_headers(
    response: aiohttp.ClientResponse, upstream: Upstream, public_base: str
) -> list[tuple[bytes, bytes]]:
    # Starlette's own headers (content-type) give way to the service's, repeats kept.
    dropped = _DROPPED_RESPONSE_HEADERS
    if b"connection" in (name.lower() for name, _ in response.raw_headers):
        listed = connection_tokens(response.headers.getall("connection", []))
        dropped = dropped | {token.encode("latin-1") for token in listed}
    headers: list[tuple[bytes, bytes]] = []
    for raw_name, value in response.raw_headers:
        name = raw_name.lower()
        if name in dropped:
            continue
        if name == b"location":
            location = public_location(value.decode("latin-1"), upstream, public_base)
            value = location.encode("latin-1")
        headers.append((name, value))
    return headers


def public_location(location: str, upstream: Upstream, public_base: str) -> str:
    """A `Location` into the service, rewritten to the gateway's path for it."""
    base_path = upstream.base_url.raw_path.rstrip("/")
    try:
        target = URL(location, encoded=True)
    except ValueError:
        return location
    if target.absolute:
        if (target.scheme, target.host, target.port) != (
            upstream.base_url.scheme,
            upstream.base_url.host,
            upstream.base_url.port,
        ):
            return location
        location = target.raw_path
    if base_path and (location == base_path or location.startswith(base_path + "/")):
        return public_base.rstrip("/") + location[len(base_path) :]
    return location
