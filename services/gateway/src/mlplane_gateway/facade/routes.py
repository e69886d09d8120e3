"""The facade's routes: `/v1/<service>/...` and MLflow's `/api/2.0/mlflow/...`.

`/v1/registry/<path>` goes to the registry's base URL + `/<path>`, and so on for
`scanner`, `deployer`, `drift` and `builder`. A service missing from the upstreams answers
503 "service not configured" to an authenticated caller (the route exists, the
service is not reachable from this gateway). `/api/2.0/mlflow/<path>` (and
`/ajax-api/2.0/mlflow/<path>`) goes to the registry's `/api/2.0/mlflow/<path>`,
with errors MLflow's client can read. Every error, the gateway's own included
(401 with `WWW-Authenticate`, 429 with `Retry-After`), is problem+json.

Scopes: reads (GET, HEAD, and MLflow's read-only POSTs) need `models:read`;
writes need `models:write`, except the deployer's, which need `deploy:write`,
or `deploy:approve` under `approvals`, and the drift service's sample intake
(`samples`, `samples/parquet`), which needs `events:publish`: model servers send
samples with a key that may do nothing else.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations,
# which name the dependency passed in.
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from mlplane_runtime.body_limit import max_body_bytes
from mlplane_runtime.errors import MlplaneError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mlplane_gateway.facade.errors import (
    SERVICE_NOT_CONFIGURED,
    ErrorRenderer,
    render_mlflow_problem,
    render_problem,
)
from mlplane_gateway.facade.identity import Caller, IdentitySigner
from mlplane_gateway.facade.proxy import forward
from mlplane_gateway.facade.upstreams import Upstream, Upstreams

MODELS_READ: Final = "models:read"
MODELS_WRITE: Final = "models:write"
DEPLOY_WRITE: Final = "deploy:write"
DEPLOY_APPROVE: Final = "deploy:approve"
EVENTS_PUBLISH: Final = "events:publish"

FACADE_SERVICES: Final = ("registry", "scanner", "deployer", "drift", "builder")
MLFLOW_PREFIXES: Final = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_READ_METHODS: Final = frozenset({"GET", "HEAD"})
# MLflow reads that its client sends as POST.
_MLFLOW_READ_POSTS: Final = frozenset({"registered-models/get-latest-versions"})
# The largest body a service takes through the facade (the scanner's VEX documents);
# each service enforces its own, smaller limits per route.
FACADE_MAX_BODY_BYTES: Final = 8 * 1024 * 1024


Authenticate = Callable[[Request], Awaitable[Caller]]
"""The authenticated caller of a request (or raising 401/429). A plain call, not a
FastAPI dependency: dependency solving cost a tenth of a forwarded call."""
RequireScope = Callable[[Caller, str], Awaitable[None] | None]
"""Raises (403) when the caller lacks the scope."""


def required_scope(service: str, method: str, path: str) -> str:
    """The scope a call of `method` on `path` (relative to `service`) needs."""
    if method.upper() in _READ_METHODS:
        return MODELS_READ
    if service == "mlflow":
        return MODELS_READ if path.strip("/") in _MLFLOW_READ_POSTS else MODELS_WRITE
    if service == "deployer":
        return DEPLOY_APPROVE if "approvals" in path.split("/") else DEPLOY_WRITE
    if service == "drift" and path.strip("/").split("/", 1)[0] == "samples":
        return EVENTS_PUBLISH
    return MODELS_WRITE


def facade_router(
    upstreams: Upstreams,
    *,
    authenticate: Authenticate,
    require_scope: RequireScope,
    signer: IdentitySigner,
) -> APIRouter:
    """The facade's routes over `upstreams`, guarded by the gateway's own auth.

    `authenticate(request)` runs first, then `require_scope(caller,
    scope)` with the scope `required_scope` names; each call carries an identity
    `signer` signs for the service. The routes are left out of the OpenAPI
    document: each service documents its own API.
    """
    services, mlflow = facade_routers(
        upstreams, authenticate=authenticate, require_scope=require_scope, signer=signer
    )
    router = APIRouter(tags=["facade"])
    router.include_router(services)
    router.include_router(mlflow)
    return router


def facade_routers(
    upstreams: Upstreams,
    *,
    authenticate: Authenticate,
    require_scope: RequireScope,
    signer: IdentitySigner,
) -> tuple[APIRouter, APIRouter]:
    """`facade_router`'s routes as two routers: `/v1/<service>/...`, and MLflow's
    prefixes, so a host can try the first before routes that must come before the
    second (MLflow's webhook API, served by the gateway itself)."""
    route = _FacadeRoutes(authenticate, require_scope, signer)
    services = APIRouter(tags=["facade"])
    for service in FACADE_SERVICES:
        upstream = upstreams.get(service)
        base = f"/v1/{service}"
        services.add_api_route(
            base + "/{path:path}",
            (
                route.not_configured(service, render_problem)
                if upstream is None
                else route.endpoint(upstream, service, base, "", render_problem)
            ),
            methods=METHODS,
            include_in_schema=False,
            openapi_extra=max_body_bytes(FACADE_MAX_BODY_BYTES),
            route_class_override=ProblemRoute,
        )

    mlflow = APIRouter(tags=["facade"])
    registry = upstreams.get("registry")
    for prefix in MLFLOW_PREFIXES:
        mlflow.add_api_route(
            prefix + "/{path:path}",
            (
                route.not_configured("registry", render_mlflow_problem)
                if registry is None
                else route.endpoint(
                    registry, "mlflow", "", prefix.lstrip("/") + "/", render_mlflow_problem
                )
            ),
            methods=METHODS,
            include_in_schema=False,
            openapi_extra=max_body_bytes(FACADE_MAX_BODY_BYTES),
            route_class_override=MlflowErrorsRoute,
        )
    return services, mlflow


class _FacadeRoutes:
    """The endpoints of facade routes, closing over the gateway's auth and signer."""

    def __init__(
        self, authenticate: Authenticate, require_scope: RequireScope, signer: IdentitySigner
    ) -> None:
        self._authenticate = authenticate
        self._require_scope = require_scope
        self._signer = signer

    def endpoint(
        self,
        upstream: Upstream,
        service: str,
        public_base: str,
        path_prefix: str,
        render: ErrorRenderer,
    ) -> Callable[..., Coroutine[Any, Any, Response]]:
        authenticate, require_scope, signer = (
            self._authenticate,
            self._require_scope,
            self._signer,
        )

        async def call(request: Request, path: str) -> Response:
            caller = await authenticate(request)
            checked = require_scope(caller, required_scope(service, request.method, path))
            if inspect.isawaitable(checked):
                await checked
            return await forward(
                request,
                upstream,
                path_prefix + path,
                caller=caller,
                signer=signer,
                public_base=public_base,
                render=render,
            )

        return call

    def not_configured(
        self, service: str, render: ErrorRenderer
    ) -> Callable[..., Awaitable[Response]]:
        authenticate, require_scope = self._authenticate, self._require_scope

        async def call(request: Request, path: str) -> Response:
            caller = await authenticate(request)
            checked = require_scope(caller, required_scope(service, request.method, path))
            if inspect.isawaitable(checked):
                await checked
            return render(
                503,
                title="Service not configured",
                detail=f"the {service} service is not configured on this gateway",
                problem_type=SERVICE_NOT_CONFIGURED,
                instance=request.url.path,
                extensions={"service": service},
            )

        return call


class ProblemRoute(APIRoute):
    """A facade route: its endpoint `(request, path)` is called directly, and its own
    errors (auth, scope, rate limit) are problem+json with their headers
    (`WWW-Authenticate`, `Retry-After`), which the platform's handler drops.

    No FastAPI dependency solving on the hot path: the endpoint closes over everything
    it uses (built in the gateway's `build`), so the dependencies a router adds, the
    host's binding of the request to the hosting included, are not run for it.
    """

    def render(self) -> ErrorRenderer:
        return render_problem

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def run(request: Request) -> Response:
            try:
                response: Response = await endpoint(request, request.path_params["path"])
                return response
            except MlplaneError as exc:
                headers: dict[str, str] | None = getattr(exc, "headers", None)
                return self.render()(
                    exc.status,
                    title=exc.title,
                    detail=exc.detail,
                    problem_type=exc.problem_type,
                    instance=request.url.path,
                    headers=dict(headers) if headers else None,
                    extensions=dict(exc.extensions),
                )
            except HTTPException as exc:
                return self.render()(
                    exc.status_code,
                    title=None,
                    detail=exc.detail if isinstance(exc.detail, str) else None,
                    problem_type="about:blank",
                    instance=request.url.path,
                    headers=dict(exc.headers) if exc.headers else None,
                )

        return run


class MlflowErrorsRoute(ProblemRoute):
    """A route whose own errors MLflow's client can read too (`error_code`, `message`)."""

    def render(self) -> ErrorRenderer:
        return render_mlflow_problem
