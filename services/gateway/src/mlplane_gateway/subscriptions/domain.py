"""Subscriptions to platform events: what they match, where they may deliver, when to retry.

Pure: no I/O. A sink's host is resolved elsewhere (`sinks.py`); here its
addresses are judged. Shaped after the CloudEvents Subscriptions API: a sink URL
and filters, here a set of `type` prefixes and one `subject` prefix. A team's
subscription only ever sees its own team's events.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.errors import PROBLEM_BASE_URI, InvalidInput

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_TYPE_PREFIXES: Final = 20
MAX_URL_LENGTH: Final = 2048


class InvalidSink(InvalidInput):
    """A sink URL that deliveries may not go to."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-sink"
    title = "Invalid sink"


class ContentMode(StrEnum):
    """How an event is put on the wire (CloudEvents HTTP binding)."""

    BINARY = "binary"
    STRUCTURED = "structured"
    MLFLOW = "mlflow"
    """An MLflow model-registry webhook: MLflow's payload and signature (`mlflow`)."""


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events: of `team`, whose type starts with one of `types` (none: any type),
    whose subject starts with `subject_prefix` (None: any subject)."""

    team: str | None
    """None only for the operator's stream: every team."""
    types: tuple[str, ...] = ()
    subject_prefix: str | None = None

    def accepts(self, event_type: str, subject: str | None, team: str | None) -> bool:
        if self.team is not None and team != self.team:
            return False
        if self.types and not any(event_type.startswith(prefix) for prefix in self.types):
            return False
        if self.subject_prefix is not None:
            return subject is not None and subject.startswith(self.subject_prefix)
        return True


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    team: str
    sink_url: str
    types: tuple[str, ...]
    subject_prefix: str | None
    secret: str = field(repr=False)
    created_at: datetime
    disabled: bool = False
    mode: ContentMode = ContentMode.BINARY
    name: str | None = None
    """MLflow webhooks: the webhook's name, description, MLflow events, last change."""
    description: str | None = None
    mlflow_events: tuple[str, ...] = ()
    updated_at: datetime | None = None

    @property
    def filter(self) -> EventFilter:
        return EventFilter(self.team, self.types, self.subject_prefix)


def event_team(event: CloudEvent) -> str | None:
    """The team an event belongs to (every mlplane payload names one)."""
    team = getattr(event.data, "team", None)
    return team if isinstance(team, str) else None


def matches(subscription: Subscription, event: CloudEvent) -> bool:
    """True when `event` is to be delivered to `subscription` (an MLflow webhook: also
    one of the MLflow events it asked for)."""
    if subscription.disabled:
        return False
    if not subscription.filter.accepts(event.type, event.subject, event_team(event)):
        return False
    if subscription.mode is ContentMode.MLFLOW:
        # Imported here: the MLflow wire format builds on this module.
        from mlplane_gateway.subscriptions.mlflow import mlflow_event_of

        return mlflow_event_of(event) in subscription.mlflow_events
    return True


def check_type_prefixes(types: Iterable[str]) -> tuple[str, ...]:
    """The prefixes, deduplicated and sorted; InvalidInput for blank or too many."""
    unique = sorted(set(types))
    if len(unique) > MAX_TYPE_PREFIXES:
        raise InvalidInput(f"at most {MAX_TYPE_PREFIXES} type prefixes")
    if any(not prefix.strip() or len(prefix) > 255 for prefix in unique):
        raise InvalidInput("a type prefix must be 1..255 characters, not blank")
    return tuple(unique)


@dataclass(frozen=True, slots=True)
class SinkTarget:
    """A sink URL taken apart: what gets resolved and checked."""

    url: str
    scheme: str
    host: str
    addresses: tuple[str, ...] = ()
    """What the host resolved to when checked: deliveries connect to these only."""


def parse_sink_url(url: str) -> SinkTarget:
    """The sink's scheme and host; InvalidSink when the URL cannot be a sink at all.

    Refused: not http(s), no host, credentials in the URL (they would be logged
    and shown back), a fragment, over 2048 characters.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSink(f"the sink URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InvalidSink(f"the sink URL is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidSink("the sink URL must be https:// (or http:// to an allowlisted address)")
    if not parts.hostname:
        raise InvalidSink("the sink URL has no host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidSink("the sink URL must not carry credentials; deliveries are signed")
    if parts.fragment:
        raise InvalidSink("the sink URL must not have a fragment")
    return SinkTarget(url=url, scheme=parts.scheme, host=parts.hostname)


def sink_key(url: str) -> str:
    """The server a sink URL reaches, `scheme://host:port`: what delivery concurrency
    is counted by. Spellings of one server (host case, a trailing dot, the default
    port written out or not) give one key, so none of them gets a second share."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return f"{parts.scheme.lower()}://{host}:{port}"


SPECIAL_PURPOSE_NETWORKS: Final[tuple[IpNetwork, ...]] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # this network
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "64:ff9b::/96",  # NAT64 (judged by its IPv4 address below as well)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (judged by its IPv4 address below as well)
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated, still routed inside sites)
    )
)
"""Ranges `ipaddress`' properties miss or judge by version: never a sink unless allowlisted."""
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: IpAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address reaches or carries: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002:AABB:CCDD::), Teredo
    (server and client), NAT64 (64:ff9b::a.b.c.d)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible (deprecated), not :: or ::1
        found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    if any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return tuple(found)


def _is_special(ip: IpAddress) -> bool:
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_private
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or any(ip.version == net.version and ip in net for net in SPECIAL_PURPOSE_NETWORKS)
    )


def is_public_address(address: IpAddress) -> bool:
    """False for any special-purpose address (private, loopback, link-local, multicast,
    unspecified, reserved, site-local, shared, benchmarking, documentation, protocol
    assignments, ...), and for an IPv6 address carrying an IPv4 one that is."""
    return not _is_special(address) and not any(_is_special(ip) for ip in embedded_ipv4(address))


def is_allowlisted(address: IpAddress, allowlist: Sequence[IpNetwork]) -> bool:
    """True when `allowlist` names the address, or the IPv4 address it carries."""
    candidates = (address, *embedded_ipv4(address))
    return any(
        ip.version == network.version and ip in network
        for ip in candidates
        for network in allowlist
    )


def check_sink_addresses(
    target: SinkTarget, addresses: Sequence[str], allowlist: Sequence[IpNetwork]
) -> None:
    """Refuse (InvalidSink) a sink unless every address its host resolves to may be called.

    An address may be called when it is public, or inside `allowlist`. Plain
    http is accepted only when every address is allowlisted (a local receiver in
    development or tests). Every address counts: the client may connect to any.
    """
    if not addresses:
        raise InvalidSink(f"the sink host {target.host!r} does not resolve")
    parsed: list[IpAddress] = []
    for raw in addresses:
        try:
            parsed.append(ipaddress.ip_address(raw.split("%", 1)[0]))
        except ValueError:
            raise InvalidSink(f"the sink host resolved to {raw!r}, not an address") from None
    allowed = [is_allowlisted(ip, allowlist) for ip in parsed]
    for ip, listed in zip(parsed, allowed, strict=True):
        if not listed and not is_public_address(ip):
            raise InvalidSink(
                f"the sink host {target.host!r} resolves to {ip}, a special-purpose "
                "address (private, loopback, link-local, multicast, reserved, ...)"
            )
    if target.scheme != "https" and not all(allowed):
        raise InvalidSink("the sink URL must be https://")


def parse_allowlist(cidrs: Iterable[str]) -> tuple[IpNetwork, ...]:
    """Networks from CIDR strings (settings); ValueError naming a bad one."""
    networks: list[IpNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a CIDR network: {cidr!r} ({exc})") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """When a failed delivery is tried again, and when it is given up (dead-lettered)."""

    max_attempts: int = 8
    base_delay_s: float = 5.0
    max_delay_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not 0 < self.base_delay_s <= self.max_delay_s:
            raise ValueError("max_attempts >= 1 and 0 < base_delay_s <= max_delay_s")

    def gives_up_after(self, attempt: int) -> bool:
        """True when try `attempt` (1-based) was the last one."""
        return attempt >= self.max_attempts

    def delay_s(self, attempt: int, fraction: float) -> float:
        """The wait after try `attempt` failed: doubling, capped, the upper half jittered.

        `fraction` in [0, 1) is the random draw; half the bound is always waited,
        so a struggling sink gets at least that much rest.
        """
        bound = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return bound * (0.5 + 0.5 * fraction)
