"""The scopes a caller's credential holds, as the gateway's identity tokens name them.

The gateway checks one per public route; each service checks them again on its own
routes from the token the gateway signs, so a route is guarded where it is served.
"""

from __future__ import annotations

from typing import Final

MODELS_READ: Final = "models:read"
MODELS_WRITE: Final = "models:write"
DEPLOY_WRITE: Final = "deploy:write"
DEPLOY_APPROVE: Final = "deploy:approve"
EVENTS_PUBLISH: Final = "events:publish"
EVENTS_SUBSCRIBE: Final = "events:subscribe"
ADMIN: Final = "admin"

ALL_SCOPES: Final = frozenset(
    {
        MODELS_READ,
        MODELS_WRITE,
        DEPLOY_WRITE,
        DEPLOY_APPROVE,
        EVENTS_PUBLISH,
        EVENTS_SUBSCRIBE,
        ADMIN,
    }
)
