"""The console's routes: `/` (to the console), `/console/...` pages, forms and assets.

Every page but sign-in needs a session (`signed_in`); without one, a page redirects
to sign-in. Every form POST passes the CSRF checks (`csrf`). Reads and changes go
to the services as the session's principal (`backend.Services`). Errors are pages
saying what went wrong (with the service's own detail for a refusal), never a 500.
"""

# No `from __future__ import annotations`: FastAPI resolves these annotations at import.
import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, date, datetime
from datetime import time as day_time
from typing import Annotated, Any, Final
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.routing import APIRoute
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.deps import CurrentContext
from mlplane_runtime.errors import InvalidInput, MlplaneError
from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response, StreamingResponse

from mlplane_gateway.auth.authentication import Gatekeeper
from mlplane_gateway.auth.guard import client_address
from mlplane_gateway.auth.principals import Principal, PrincipalKind, Scope
from mlplane_gateway.console import csrf
from mlplane_gateway.console.assets import ASSETS, LONG_CACHE
from mlplane_gateway.console.backend import NotInstalled, ServiceError, Services
from mlplane_gateway.console.drift_charts import feature_charts
from mlplane_gateway.console.oidc_login import (
    CALLBACK_PATH,
    PENDING_COOKIE,
    PENDING_TTL_S,
    ConsoleSettings,
    authorization_url,
    console_settings,
    new_pending,
    seal,
    unseal,
)
from mlplane_gateway.console.oidc_token import exchange_code
from mlplane_gateway.console.pages import SECURITY_HEADERS, form_fields, render
from mlplane_gateway.console.sessions import (
    COOKIE,
    MAX_COOKIE_CHARS,
    ConsoleSession,
    SessionStore,
    cookie_is_secure,
    key_id_of,
    new_csrf_token,
    new_session_id,
    session_expiry,
)
from mlplane_gateway.console.tables import session_table
from mlplane_gateway.console.views import (
    image_digest,
    lifecycle_steps,
    safe_return_path,
    web_link,
)
from mlplane_gateway.deps import Gateway, HostedGateway
from mlplane_gateway.errors import GatewayError
from mlplane_gateway.keys.store import ApiKeyStore
from mlplane_gateway.subscriptions.domain import EventFilter
from mlplane_gateway.subscriptions.stream import parse_last_event_id, sse_frames

HOME: Final = "/console/"
SIGN_IN: Final = "/console/sign-in"
PAGE_SIZE: Final = 50
DRIFT_REPORTS: Final = 20
DEAD_LETTER_SERVICES: Final = ("registry", "builder", "scanner", "deployer", "drift")
MAX_KEY_CHARS: Final = 512

ModelName = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
Digest = Annotated[str, Path(min_length=71, max_length=71, pattern=r"^sha256:[0-9a-f]{64}$")]
Cursor = Annotated[str | None, Query(max_length=512)]
DONE: Final = {
    "approved": "approved",
    "rollback": "rollback requested: a revert commit is on its way",
    "exception": "exception added",
    "replayed": "dead letter replayed",
    "not-replayed": "nothing replayed: the letter is gone, or not your team's",
}
"""What a form did, shown once on the page it redirects to (`?done=`): fixed texts,
so no link can make a page say something else."""

Done = Annotated[str | None, Query(max_length=16)]


class SignInRequired(Exception):
    """No session, or one that ended (expired, signed out, its key revoked)."""


class ConsoleRoute(APIRoute):
    """A console route: every answer gets the security headers and a `Server-Timing`
    figure; a missing session redirects to sign-in; an expected error is a page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except SignInRequired:
                response = _to_sign_in(request)
            except ServiceError as exc:
                response = _error_page(request, exc.status_code, exc.service_title, exc.detail)
            except GatewayError as exc:
                response = _error_page(request, exc.status, exc.title, exc.detail)
                for name, value in (exc.headers or {}).items():
                    response.headers[name] = value
            except MlplaneError as exc:
                response = _error_page(request, exc.status, exc.title, exc.detail)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
            return response

        return handle


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{SIGN_IN}?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "session": None},
        status_code=status,
    )


root_router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@root_router.get("/")
async def root() -> Response:
    return RedirectResponse(HOME, status_code=303)


# -- sessions ---------------------------------------------------------------------------


async def signed_in(
    request: Request, gateway: HostedGateway, context: CurrentContext
) -> ConsoleSession:
    """The request's session, its key still good, the principal rate-limited as any
    caller of the gateway; SignInRequired otherwise."""
    session_id = request.cookies.get(COOKIE)
    if not session_id or len(session_id) > MAX_COOKIE_CHARS:
        raise SignInRequired
    now = datetime.now(UTC)
    async with context.uow_factory.reading() as uow:
        session = await SessionStore(uow.session, session_table(gateway.tables.metadata)).get(
            session_id, now
        )
        if session is None:
            raise SignInRequired
        if session.key_id is not None:
            key = await ApiKeyStore(uow.session, gateway.tables).api_key(session.key_id)
            if key is None or key.revoked_at is not None:
                raise SignInRequired
            if key.expires_at is not None and now >= key.expires_at:
                raise SignInRequired
    await gateway.auth.limiter.take(session.principal)
    return session


def _services(gateway: HostedGateway, session: ConsoleSession) -> Services:
    return Services(gateway.facade, session.principal)


async def _checked_form(request: Request, session: ConsoleSession) -> dict[str, str]:
    csrf.check_origin(
        request.headers.get("origin"),
        request.headers.get("referer"),
        request.url.scheme,
        request.headers.get("host"),
    )
    fields = await form_fields(request)
    csrf.check_token(
        session.csrf_token, fields.get("csrf_token") or request.headers.get("x-csrf-token")
    )
    return fields


def _base(session: ConsoleSession, section: str) -> dict[str, Any]:
    principal = session.principal
    return {
        "session": session,
        "team": principal.team,
        "who": principal.id,
        "section": section,
        "can": {scope.value: principal.has(scope) for scope in Scope},
    }


def _oidc_ready(gateway: HostedGateway) -> bool:
    return gateway.auth.oidc is not None and console_settings().oidc_ready()


@router.get("/sign-in")
async def sign_in_page(
    request: Request, gateway: Gateway, next: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    return _sign_in_form(request, gateway, next or "", None)


def _sign_in_form(
    request: Request, gateway: HostedGateway, next_path: str, error: str | None, status: int = 200
) -> Response:
    return render(
        request,
        "sign_in.html",
        {
            "session": None,
            "next": next_path,
            "sign_in_error": error,
            "oidc": _oidc_ready(gateway),
        },
        status,
    )


@router.post("/sign-in")
async def sign_in(request: Request, gateway: Gateway, context: CurrentContext) -> Response:
    """An API key exchanged for a session: checked as any credential (failures count
    against the address and key id), then forgotten; only the session id goes back."""
    csrf.check_origin(
        request.headers.get("origin"),
        request.headers.get("referer"),
        request.url.scheme,
        request.headers.get("host"),
    )
    fields = await form_fields(request)
    key = fields.get("api_key", "").strip()
    next_path = safe_return_path(fields.get("next"), HOME)
    if not key or len(key) > MAX_KEY_CHARS:
        return _sign_in_form(request, gateway, next_path, "enter an API key", 422)
    try:
        principal = await gateway.guard.gatekeeper.enter(key, client_address(request))
    except GatewayError as exc:
        if exc.status == 401:
            return _sign_in_form(request, gateway, next_path, exc.detail, 401)
        raise
    if principal.team is None or principal.kind is PrincipalKind.BOOTSTRAP:
        return _sign_in_form(
            request,
            gateway,
            next_path,
            "the operator's bootstrap key acts for every team: sign in with a team's key",
            403,
        )
    return await _open_session(request, gateway, context, principal, next_path)


async def _open_session(
    request: Request,
    gateway: HostedGateway,
    context: CurrentContext,
    principal: Principal,
    next_path: str,
) -> Response:
    """A new session for `principal`, its cookie set, the browser sent to `next_path`."""
    now = datetime.now(UTC)
    session_id = new_session_id()
    session = ConsoleSession(
        principal=principal,
        key_id=key_id_of(principal),
        csrf_token=new_csrf_token(),
        expires_at=session_expiry(now, principal.expires_at),
    )
    async with context.uow_factory() as uow:
        store = SessionStore(uow.session, session_table(gateway.tables.metadata))
        await store.delete_expired(now)
        await store.create(session_id, session)
        await uow.commit()
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max(1, int((session.expires_at - now).total_seconds())),
        path="/",
        secure=cookie_is_secure(request.url.scheme, request.url.hostname),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/sign-in/oidc")
async def oidc_sign_in(
    request: Request,
    gateway: Gateway,
    next: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """To the identity provider, with a fresh state and PKCE challenge (S256)."""
    if not _oidc_ready(gateway):
        raise NotFoundAsset("single sign-on is not configured on this gateway")
    settings = console_settings()
    pending = new_pending(safe_return_path(next, HOME))
    response = RedirectResponse(
        authorization_url(settings, pending, _redirect_uri(request, settings)), status_code=303
    )
    response.set_cookie(
        PENDING_COOKIE,
        seal(pending, gateway.settings.pepper()),
        max_age=PENDING_TTL_S,
        path=CALLBACK_PATH,
        secure=cookie_is_secure(request.url.scheme, request.url.hostname),
        httponly=True,
        samesite="lax",
    )
    return response


def _redirect_uri(request: Request, settings: ConsoleSettings) -> str:
    if settings.oidc_redirect_url is not None:
        return str(settings.oidc_redirect_url)
    return f"{request.url.scheme}://{request.headers.get('host', '')}{CALLBACK_PATH}"


OidcParameter = Annotated[str | None, Query(max_length=2048)]


@router.get("/oidc/callback")
async def oidc_callback(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    code: OidcParameter = None,
    state: OidcParameter = None,
    error: OidcParameter = None,
) -> Response:
    """The identity provider's answer: the state checked against the login this browser
    started, the code exchanged with the PKCE verifier, the access token verified as
    any bearer token, then a session as for an API key."""
    if not _oidc_ready(gateway) or gateway.auth.oidc is None:
        raise NotFoundAsset("single sign-on is not configured on this gateway")
    settings = console_settings()
    pending = unseal(request.cookies.get(PENDING_COOKIE), gateway.settings.pepper())
    if pending is None or state is None or not hmac.compare_digest(pending.state, state):
        return _sign_in_form(
            request, gateway, "", "the sign-in expired or was not started here: try again", 400
        )
    if error is not None or not code:
        refused = (error or "no code")[:100]
        return _sign_in_form(
            request, gateway, pending.next_path, f"the identity provider refused: {refused}", 401
        )
    token = await exchange_code(settings, code, pending.verifier, _redirect_uri(request, settings))
    try:
        principal = await gateway.auth.oidc.principal(token)
    except GatewayError as exc:
        return _sign_in_form(request, gateway, pending.next_path, exc.detail, 401)
    if principal.team is None:
        return _sign_in_form(request, gateway, pending.next_path, "the token names no team", 403)
    await gateway.auth.limiter.take(principal)
    response = await _open_session(request, gateway, context, principal, pending.next_path)
    response.delete_cookie(PENDING_COOKIE, path=CALLBACK_PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, gateway: Gateway, context: CurrentContext) -> Response:
    session = await signed_in(request, gateway, context)
    await _checked_form(request, session)
    async with context.uow_factory() as uow:
        store = SessionStore(uow.session, session_table(gateway.tables.metadata))
        await store.delete(request.cookies[COOKIE])
        await uow.commit()
    response = RedirectResponse(SIGN_IN, status_code=303)
    response.delete_cookie(
        COOKIE,
        path="/",
        secure=cookie_is_secure(request.url.scheme, request.url.hostname),
        httponly=True,
        samesite="strict",
    )
    return response


# -- models and versions ----------------------------------------------------------------


@router.get("/")
async def models_page(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    q: Annotated[str | None, Query(max_length=63)] = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    prefix = (q or "").strip().lower()
    answer = await _services(gateway, session).get(
        "registry", "/models", {"name_prefix": prefix or None, "limit": 200}
    )
    template = "models_table.html" if request.headers.get("hx-request") else "models.html"
    return render(
        request,
        template,
        {**_base(session, "models"), "models": answer.get("models", []), "q": prefix},
    )


@router.get("/models/{name}")
async def model_page(
    request: Request,
    name: ModelName,
    gateway: Gateway,
    context: CurrentContext,
    cursor: Cursor = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    services = _services(gateway, session)
    model, page = await asyncio.gather(
        services.get("registry", f"/models/{name}"),
        services.get(
            "registry", "/versions", {"model": name, "limit": PAGE_SIZE, "cursor": cursor}
        ),
    )
    versions = [_version_row(v) for v in page.get("versions", [])]
    return render(
        request,
        "model.html",
        {
            **_base(session, "models"),
            "model": model,
            "versions": versions,
            "next_cursor": page.get("next_cursor"),
            "first_page": cursor is None,
        },
    )


def _version_row(version: dict[str, Any]) -> dict[str, Any]:
    lifecycle = version.get("lifecycle") or {}
    lineage = version.get("lineage") or {}
    artifact = version.get("artifact") or {}
    return {
        **version,
        "steps": lifecycle_steps(lifecycle),
        "commit": lineage.get("commit_sha"),
        "ci_run": web_link(lineage.get("ci_run_url")),
        "repository": web_link(lineage.get("git_repository")),
        "sha256": artifact.get("sha256"),
        "digest": image_digest(lifecycle.get("image")),
    }


@router.get("/models/{name}/versions/{number}")
async def version_page(
    request: Request,
    name: ModelName,
    number: VersionNumber,
    gateway: Gateway,
    context: CurrentContext,
) -> Response:
    session = await signed_in(request, gateway, context)
    return await _version_view(request, gateway, session, name, number)


async def _version_view(
    request: Request,
    gateway: HostedGateway,
    session: ConsoleSession,
    name: str,
    number: int,
    error: str | None = None,
    status: int = 200,
) -> Response:
    services = _services(gateway, session)
    version = _version_row(await services.get("registry", f"/models/{name}/versions/{number}"))
    deployments = await _optional(
        services.get("deployer", "/deployments", {"model": name, "limit": 100})
    )
    scans = None
    if version["digest"]:
        scans = await _optional(services.get("scanner", f"/scans/{version['digest']}"))
    return render(
        request,
        "version.html",
        {
            **_base(session, "models"),
            "v": version,
            "deployments": [
                d for d in (deployments or {}).get("deployments", []) if d.get("version") == number
            ],
            "scans": (scans or {}).get("scans", []),
            "error": error,
        },
        status,
    )


async def _optional(call: Coroutine[Any, Any, Any]) -> Any:
    """The answer, or None when the service is not installed."""
    try:
        return await call
    except NotInstalled:
        return None


@router.post("/models/{name}/versions/{number}/deploy")
async def deploy(
    request: Request,
    name: ModelName,
    number: VersionNumber,
    gateway: Gateway,
    context: CurrentContext,
) -> Response:
    session = await signed_in(request, gateway, context)
    fields = await _checked_form(request, session)
    environment = fields.get("environment", "").strip()
    body: dict[str, Any] = {"model": name, "version": number, "environment": environment}
    if fields.get("reason", "").strip():
        body["reason"] = fields["reason"].strip()
    try:
        created = await _services(gateway, session).post("deployer", "/deployments", body)
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return await _version_view(
            request, gateway, session, name, number, exc.detail, exc.status_code
        )
    return RedirectResponse(f"/console/deployments/{created['id']}", status_code=303)


# -- scans ------------------------------------------------------------------------------


@router.get("/scans")
async def scans_page(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    answer = await _services(gateway, session).get(
        "scanner", "/scans", {"limit": PAGE_SIZE, "before": before}
    )
    return render(
        request,
        "scans.html",
        {
            **_base(session, "scans"),
            "scans": answer.get("scans", []),
            "next_before": answer.get("next_before"),
        },
    )


@router.get("/scans/{digest}")
async def scan_page(
    request: Request, digest: Digest, gateway: Gateway, context: CurrentContext, done: Done = None
) -> Response:
    session = await signed_in(request, gateway, context)
    return await _scan_view(request, gateway, session, digest, notice=DONE.get(done or ""))


@router.get("/scans/{digest}/sbom")
async def scan_sbom(
    request: Request, digest: Digest, gateway: Gateway, context: CurrentContext
) -> Response:
    """The image's newest SBOM, downloaded as the scanner keeps it."""
    session = await signed_in(request, gateway, context)
    document = await _services(gateway, session).download("GET", "scanner", f"/scans/{digest}/sbom")
    name = f"sbom-{digest.removeprefix('sha256:')[:12]}.cdx.json"
    return Response(
        document,
        media_type="application/vnd.cyclonedx+json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _scan_view(
    request: Request,
    gateway: HostedGateway,
    session: ConsoleSession,
    digest: str,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    services = _services(gateway, session)
    scans, policies = await asyncio.gather(
        services.get("scanner", f"/scans/{digest}"), services.get("scanner", "/policies")
    )
    return render(
        request,
        "scan.html",
        {
            **_base(session, "scans"),
            "digest": digest,
            "scans": scans.get("scans", []),
            "policies": _policy_list(policies),
            "error": error,
            "notice": notice,
            "today": date.today().isoformat(),
        },
        status,
    )


def _policy_list(answer: Any) -> list[dict[str, Any]]:
    if isinstance(answer, list):
        return [p for p in answer if isinstance(p, dict)]
    if isinstance(answer, dict):
        found = answer.get("policies", [])
        return [p for p in found if isinstance(p, dict)]
    return []


@router.post("/scans/{digest}/exceptions")
async def add_exception(
    request: Request, digest: Digest, gateway: Gateway, context: CurrentContext
) -> Response:
    session = await signed_in(request, gateway, context)
    fields = await _checked_form(request, session)
    environment = fields.get("environment", "").strip()
    try:
        expires = date.fromisoformat(fields.get("expires_on", "").strip())
    except ValueError:
        return await _scan_view(
            request, gateway, session, digest, "the expiry must be a date (YYYY-MM-DD)", 422
        )
    body: dict[str, Any] = {
        "finding_id": fields.get("finding_id", "").strip(),
        "owner": fields.get("owner", "").strip(),
        "reason": fields.get("reason", "").strip(),
        "expires_at": datetime.combine(expires, day_time(23, 59, 59), UTC).isoformat(),
    }
    if fields.get("package", "").strip():
        body["package"] = fields["package"].strip()
    if not environment or len(environment) > 63:
        return await _scan_view(request, gateway, session, digest, "choose an environment", 422)
    try:
        await _services(gateway, session).post(
            "scanner", f"/policies/{environment}/exceptions", body
        )
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return await _scan_view(request, gateway, session, digest, exc.detail, exc.status_code)
    return RedirectResponse(f"/console/scans/{digest}?done=exception", 303)


# -- deployments ------------------------------------------------------------------------


@router.get("/deployments")
async def deployments_page(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    environment: Annotated[str | None, Query(max_length=63)] = None,
    model: Annotated[str | None, Query(max_length=63)] = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    answer = await _services(gateway, session).get(
        "deployer",
        "/deployments",
        {"environment": environment, "model": model, "limit": PAGE_SIZE, "cursor": cursor},
    )
    deployments = answer.get("deployments", [])
    by_environment: dict[str, list[dict[str, Any]]] = {}
    for deployment in deployments:
        by_environment.setdefault(deployment["environment"], []).append(deployment)
    return render(
        request,
        "deployments.html",
        {
            **_base(session, "deployments"),
            "by_environment": sorted(by_environment.items()),
            "environment": environment or "",
            "model": model or "",
            "next_cursor": answer.get("next_cursor"),
        },
    )


@router.get("/deployments/{deployment_id}")
async def deployment_page(
    request: Request,
    deployment_id: UUID,
    gateway: Gateway,
    context: CurrentContext,
    done: Done = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    return await _deployment_view(
        request, gateway, session, deployment_id, notice=DONE.get(done or "")
    )


async def _deployment_view(
    request: Request,
    gateway: HostedGateway,
    session: ConsoleSession,
    deployment_id: UUID,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
    template: str = "deployment.html",
) -> Response:
    deployment = await _services(gateway, session).get("deployer", f"/deployments/{deployment_id}")
    return render(
        request,
        template,
        {
            **_base(session, "deployments"),
            "d": deployment,
            "digest": deployment.get("digest"),
            "error": error,
            "notice": notice,
        },
        status,
    )


@router.post("/deployments/{deployment_id}/approve")
async def approve(
    request: Request, deployment_id: UUID, gateway: Gateway, context: CurrentContext
) -> Response:
    session = await signed_in(request, gateway, context)
    await _checked_form(request, session)
    try:
        await _services(gateway, session).post(
            "deployer", f"/deployments/{deployment_id}/approvals"
        )
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return await _deployment_view(
            request, gateway, session, deployment_id, exc.detail, exc.status_code
        )
    return RedirectResponse(f"/console/deployments/{deployment_id}?done=approved", 303)


@router.get("/deployments/{deployment_id}/rollback")
async def rollback_confirmation(
    request: Request, deployment_id: UUID, gateway: Gateway, context: CurrentContext
) -> Response:
    """The confirmation step: a rollback is a revert commit, asked for on this page."""
    session = await signed_in(request, gateway, context)
    return await _deployment_view(
        request, gateway, session, deployment_id, template="rollback.html"
    )


@router.post("/deployments/{deployment_id}/rollback")
async def rollback(
    request: Request, deployment_id: UUID, gateway: Gateway, context: CurrentContext
) -> Response:
    session = await signed_in(request, gateway, context)
    fields = await _checked_form(request, session)
    if fields.get("confirm") != "yes":
        raise InvalidInput("confirm the rollback on its page")
    try:
        await _services(gateway, session).post("deployer", f"/deployments/{deployment_id}/rollback")
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return await _deployment_view(
            request, gateway, session, deployment_id, exc.detail, exc.status_code
        )
    return RedirectResponse(f"/console/deployments/{deployment_id}?done=rollback", 303)


# -- drift ------------------------------------------------------------------------------


@router.get("/drift")
async def drift_page(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    model: Annotated[str | None, Query(max_length=63, pattern=DNS_LABEL_PATTERN)] = None,
    environment: Annotated[str | None, Query(max_length=63)] = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    services = _services(gateway, session)
    base = {**_base(session, "drift"), "model": model or "", "environment": environment or ""}
    models = await services.get("registry", "/models", {"limit": 200})
    base["models"] = [m["name"] for m in models.get("models", [])]
    if not services.installed("drift"):
        return render(request, "drift.html", {**base, "installed": False})
    reports: list[dict[str, Any]] = []
    charts: list[Any] = []
    if model:
        listing = await services.get(
            "drift",
            f"/models/{model}/reports",
            {"environment": environment, "limit": DRIFT_REPORTS},
        )
        reports = listing.get("reports", [])
        documents = await asyncio.gather(
            *(services.get("drift", f"/reports/{r['id']}") for r in reports)
        )
        charts = feature_charts([d for d in documents if isinstance(d, dict)])
    return render(
        request,
        "drift.html",
        {
            **base,
            "installed": True,
            "reports": reports,
            "charts": charts,
            "chart_data": [chart.as_json() for chart in charts],
        },
    )


# -- events and dead letters ------------------------------------------------------------


@router.get("/events")
async def events_page(request: Request, gateway: Gateway, context: CurrentContext) -> Response:
    session = await signed_in(request, gateway, context)
    Gatekeeper.check_scope(session.principal, Scope.EVENTS_SUBSCRIBE)
    return render(request, "events.html", _base(session, "events"))


@router.get("/events/stream")
async def events_stream(request: Request, gateway: Gateway, context: CurrentContext) -> Response:
    """The team's events as server-sent events for the page (the session's scope
    `events:subscribe`; the same stream as `GET /v1/events/stream`, new events only)."""
    session = await signed_in(request, gateway, context)
    principal: Principal = session.principal
    Gatekeeper.check_scope(principal, Scope.EVENTS_SUBSCRIBE)
    resume = request.headers.get("last-event-id")
    if resume is not None:
        start = parse_last_event_id(resume)
    else:
        # A fresh page shows what happens from now on, not the team's whole history.
        events = gateway.subscriptions.tables.events
        async with context.uow_factory.reading() as uow:
            latest = (await uow.session.execute(select(func.max(events.c.position)))).scalar()
        start = int(latest or 0)
    frames = sse_frames(
        gateway.subscriptions.events,
        EventFilter(team=principal.team),
        start,
        keepalive_s=gateway.settings.stream_keepalive_s,
    )
    return StreamingResponse(
        _unnamed(frames),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _unnamed(frames: AsyncIterator[str]) -> AsyncIterator[str]:
    """The frames without their `event:` line: a browser's EventSource hands named
    events only to listeners of that name, and the page wants every type."""
    async for frame in frames:
        yield "".join(
            line for line in frame.splitlines(keepends=True) if not line.startswith("event:")
        )


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request,
    gateway: Gateway,
    context: CurrentContext,
    service: Annotated[str, Query(max_length=16)] = "registry",
    done: Done = None,
) -> Response:
    session = await signed_in(request, gateway, context)
    return await _dead_letters_view(request, gateway, session, service, notice=DONE.get(done or ""))


async def _dead_letters_view(
    request: Request,
    gateway: HostedGateway,
    session: ConsoleSession,
    service: str,
    notice: str | None = None,
) -> Response:
    if service not in DEAD_LETTER_SERVICES:
        raise InvalidInput(f"service must be one of {', '.join(DEAD_LETTER_SERVICES)}")
    services = _services(gateway, session)
    installed = services.installed(service)
    letters: Any = []
    if installed:
        Gatekeeper.check_scope(session.principal, Scope.ADMIN)
        letters = await services.get(service, "/dead-letters", {"limit": 100})
    if isinstance(letters, dict):
        letters = letters.get("dead_letters") or []
    return render(
        request,
        "dead_letters.html",
        {
            **_base(session, "dead-letters"),
            "service": service,
            "services": DEAD_LETTER_SERVICES,
            "installed": installed,
            "letters": letters if isinstance(letters, list) else [],
            "notice": notice,
        },
    )


@router.post("/dead-letters/replay")
async def replay_dead_letter(
    request: Request, gateway: Gateway, context: CurrentContext
) -> Response:
    session = await signed_in(request, gateway, context)
    fields = await _checked_form(request, session)
    service = fields.get("service", "")
    letter = fields.get("id", "").strip()
    if service not in DEAD_LETTER_SERVICES or not letter or len(letter) > 64:
        raise InvalidInput("name the service and the dead letter to replay")
    answer = await _services(gateway, session).post(
        service, "/dead-letters/replay", {"ids": [letter]}
    )
    replayed = answer.get("replayed") if isinstance(answer, dict) else None
    done = "replayed" if isinstance(replayed, int) and replayed > 0 else "not-replayed"
    return RedirectResponse(f"/console/dead-letters?service={service}&done={done}", 303)


# -- static files -----------------------------------------------------------------------


@router.get("/static/{etag}/{name:path}")
async def static_file(etag: str, name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFoundAsset(f"no static file {name[:100]}")
    headers = {"ETag": f'"{asset.etag}"'}
    # An old hash still gets today's file, but not for a year: it may differ.
    headers["Cache-Control"] = LONG_CACHE if etag == asset.etag else "no-cache"
    return Response(asset.body, media_type=asset.media_type, headers=headers)


class NotFoundAsset(MlplaneError):
    status = 404
    title = "Not found"
