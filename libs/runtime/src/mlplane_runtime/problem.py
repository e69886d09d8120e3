"""Every HTTP error of a service as an RFC 9457 `application/problem+json` document.

One place renders errors: `MlplaneError` subclasses (their own status and problem
type), request validation failures (422, naming each field path), Starlette's
HTTP errors (404, 405, 413 for a body past its limit, ...), text the database
cannot store (NUL, untranslatable characters: 422, a safety net behind the request
models) and anything unexpected (500, logged with its traceback; the answer never
carries the exception's text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlplane_runtime.body_limit import BODY_TOO_LARGE_PROBLEM_TYPE, BodyTooLarge
from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError

PROBLEM_JSON = "application/problem+json"
VALIDATION_PROBLEM_TYPE = f"{PROBLEM_BASE_URI}/invalid-request"
INTERNAL_PROBLEM_TYPE = f"{PROBLEM_BASE_URI}/internal-error"
UNSTORABLE_TEXT_PROBLEM_TYPE = f"{PROBLEM_BASE_URI}/unstorable-text"
# PostgreSQL's SQLSTATEs for text it cannot hold: NUL in text (character_not_in_repertoire)
# and \u0000 in jsonb (untranslatable_character).
_UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})
_INTERNAL_DETAIL = "An unexpected error occurred. It has been logged; quote the trace_id if any."

_log = logging.getLogger("mlplane.http")


class ProblemResponse(JSONResponse):
    """A JSON response served as `application/problem+json`."""

    media_type = PROBLEM_JSON


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    problem_type: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem document response; `title` defaults to the status's reason phrase."""
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title or _reason(status),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extensions)
    return ProblemResponse(body, status_code=status, headers=headers)


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "items", 0, "name")` as `body.items[0].name`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error `app` answers a problem+json document.

    Registers handlers for `MlplaneError`, `RequestValidationError` and Starlette's
    `HTTPException`, and a middleware that turns any other exception escaping a
    route into a 500 problem (logged with its traceback, recorded on the request's
    span) instead of letting it reach the server. Call once, before the app starts.
    """
    app.add_exception_handler(MlplaneError, _mlplane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    # Last resort for exceptions raised outside the middleware below (in an outer
    # middleware): Starlette's ServerErrorMiddleware calls this, then re-raises.
    app.add_exception_handler(Exception, _unhandled_error)
    app.add_middleware(UnhandledErrorMiddleware)


async def _mlplane_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, MlplaneError)
    if exc.status >= 500:
        _log.warning("%s answered %s: %s", request.url.path, exc.status, exc.detail)
    return ProblemResponse(exc.problem(instance=request.url.path), status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    # The rejected input itself is left out: it may hold secrets, and the caller has it.
    errors = [
        {
            "field": field_path(error.get("loc", ())),
            "message": str(error.get("msg", "invalid")),
            "type": str(error.get("type", "value_error")),
        }
        for error in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors})) or "request"
    return problem_response(
        422,
        title="Invalid request",
        detail=f"The request is not valid: {fields}.",
        problem_type=VALIDATION_PROBLEM_TYPE,
        instance=request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    return problem_response(
        exc.status_code,
        detail=detail if detail != _reason(exc.status_code) else None,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _body_too_large(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, BodyTooLarge)
    return problem_response(
        413,
        title="Request body too large",
        detail=str(exc.detail),
        problem_type=BODY_TOO_LARGE_PROBLEM_TYPE,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
        max_body_bytes=exc.limit,
    )


async def _unhandled_error(request: Request, exc: Exception) -> ProblemResponse:
    if is_unstorable_text(exc):
        return _unstorable_text_response(request.url.path)
    _log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response(request.url.path)


def is_unstorable_text(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is PostgreSQL refusing a text value as unstorable.

    Looks through SQLAlchemy's `orig` and the `__cause__` chain for the SQLSTATE
    asyncpg reports (`22021` NUL in text, `22P05` untranslatable in jsonb).
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _UNSTORABLE_TEXT_SQLSTATES:
            return True
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None, current.__cause__]
    return False


def _unstorable_text_response(path: str) -> ProblemResponse:
    # A request model let the text through; it is the caller's input all the same.
    _log.warning("%s: the database refused a text value (NUL or untranslatable)", path)
    return problem_response(
        422,
        title="Invalid request",
        detail="The request holds text the platform cannot store (NUL or another "
        "character PostgreSQL refuses).",
        problem_type=UNSTORABLE_TEXT_PROBLEM_TYPE,
        instance=path,
    )


def internal_error_response(path: str) -> ProblemResponse:
    """The 500 problem for an unexpected error at `path` (its trace id, when traced)."""
    extensions: dict[str, Any] = {}
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        extensions["trace_id"] = format(context.trace_id, "032x")
    return problem_response(
        500,
        title="Internal error",
        detail=_INTERNAL_DETAIL,
        problem_type=INTERNAL_PROBLEM_TYPE,
        instance=path,
        **extensions,
    )


class UnhandledErrorMiddleware:
    """Answers 500 problem+json for an exception no handler took, and logs it.

    Unlike Starlette's outermost error middleware it does not re-raise, so the
    server does not log the same failure a second time (in plain text).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            path = str(scope.get("path", ""))
            if is_unstorable_text(exc) and not response_started:
                await _unstorable_text_response(path)(scope, receive, send)
                return
            span = trace.get_current_span()
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            _log.error("unhandled error in %s %s", scope.get("method", ""), path, exc_info=exc)
            if response_started:
                # Half a response is on the wire; all that is left is to drop it.
                raise
            response = internal_error_response(path)
            await response(scope, receive, send)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
