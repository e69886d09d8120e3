"""The facade of one hosting, built from settings: a pooled client per service it can
reach, and the signer of the identities it forwards.

Its routes are generated per upstream (`routes.facade_routers`), so they are made here,
in the gateway's `build`, and close over what they use: no request of the hot path
goes through FastAPI's dependency solving.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from mlplane_runtime.settings import RuntimeSettings

from mlplane_gateway.auth.guard import Guard
from mlplane_gateway.facade.identity import IdentitySigner
from mlplane_gateway.facade.routes import facade_routers
from mlplane_gateway.facade.upstreams import Upstreams
from mlplane_gateway.settings import GatewaySettings, platform_url


@dataclass(frozen=True, slots=True)
class Facade:
    upstreams: Upstreams
    signer: IdentitySigner

    def routers(self, guard: Guard) -> tuple[APIRouter, APIRouter]:
        """The facade's routes, each call authenticated and scope-checked by `guard`:
        `/v1/<service>/...`, then MLflow's prefixes (`routes.facade_routers`)."""
        return facade_routers(
            self.upstreams,
            authenticate=guard.request_caller,
            require_scope=guard.require_scope,
            signer=self.signer,
        )

    async def aclose(self) -> None:
        await self.upstreams.aclose()


def build_facade(
    settings: GatewaySettings,
    runtime: RuntimeSettings | None = None,
    *,
    identity_secret: bytes | None = None,
    installed: frozenset[str] = frozenset(),
) -> Facade:
    """The facade `settings` describe. Services in `installed` that have no URL set are
    reached at the platform's own address (`runtime`); forwarded identities are signed
    from the gateway's identity secret, else the platform's `identity_secret`.

    Raises ValueError for an upstream URL that cannot be used.
    """
    return Facade(
        upstreams=Upstreams.build(
            settings.upstream_urls(platform_url(runtime), installed), settings.upstream_limits()
        ),
        signer=IdentitySigner(
            settings.identity_key(identity_secret), lifetime_s=settings.identity_lifetime_s
        ),
    )
