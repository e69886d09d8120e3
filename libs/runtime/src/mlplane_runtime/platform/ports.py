"""Which port each service listens on when nothing says otherwise.

The gateway keeps 8080 (the platform's public address in `make run`); each service
the gateway fronts has its own next to it, so `mlplane serve registry` and
`mlplane serve scanner` started side by side do not collide, and the multi-process
launcher lays them out the same way from whatever port the gateway is given.
"""

from __future__ import annotations

from collections.abc import Sequence

GATEWAY_PORT = 8080

_OFFSETS = {"gateway": 0, "registry": 1, "builder": 2, "scanner": 3, "deployer": 4, "drift": 5}


def default_port(service: str) -> int:
    """The port `mlplane serve <service>` uses when MLPLANE_HTTP_PORT is unset.

    A service outside the platform's own six gets 8080 like the gateway: it has no
    place in the layout, so its operator names one.
    """
    return GATEWAY_PORT + _OFFSETS.get(service, 0)


def port_layout(services: Sequence[str], gateway_port: int = GATEWAY_PORT) -> dict[str, int]:
    """A port for each of `services`: the platform's own at their offset from
    `gateway_port`, any other after the last of those, in the order given."""
    layout = {s: gateway_port + _OFFSETS[s] for s in services if s in _OFFSETS}
    following = gateway_port + max(_OFFSETS.values()) + 1
    for service in services:
        if service not in layout:
            layout[service] = following
            following += 1
    return layout
