"""Each service's HTTP API over its dead-letter queue: list the parked messages, replay them.

An operator's tool: every route needs the `admin` scope. A team's admin sees and
replays only its own team's letters (the `team` of the event's data); the operator
(a caller naming no team) sees every letter, those whose team cannot be read too.

The views are for people deciding what to replay: bodies are shown as text when
they are UTF-8 (else base64), and anything that looks like a secret in the reason,
headers or body is masked as the logs mask it; SQL statements and their parameters
are cut from reasons. Replay moves the original, unmasked messages.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' local aliases.

import base64
import json
import logging
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from mlplane_runtime.bus.base import DeadLetter, Transport
from mlplane_runtime.caller import Caller, CallerDependency, require_scope
from mlplane_runtime.errors import MlplaneError, Unavailable
from mlplane_runtime.problem import PROBLEM_JSON
from mlplane_runtime.telemetry.logging import REDACTED, is_secret_key, redact_text, redact_value

MAX_LIST_LIMIT = 1000
MAX_REPLAY_IDS = 10_000
ADMIN_SCOPE = "admin"
TEAM_SCAN_LIMIT = 10_000
"""A team's admin is shown its letters among the oldest this many of the queue."""

# SQLAlchemy appends the statement and its parameters to a driver error's text.
_SQL_DETAIL = re.compile(r"\s*\[(?:SQL|parameters): .*?\](?=\s*(?:\[|\(Background|$))", re.S)

_log = logging.getLogger("mlplane.dead_letters")

_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No verified caller", "content": {PROBLEM_JSON: {}}},
    403: {"description": "The caller lacks the admin scope", "content": {PROBLEM_JSON: {}}},
    422: {"description": "Invalid request", "content": {PROBLEM_JSON: {}}},
    503: {"description": "The dead-letter queue cannot be reached", "content": {PROBLEM_JSON: {}}},
}


class DeadLetterView(BaseModel):
    """One dead-lettered message as the API shows it."""

    model_config = ConfigDict(frozen=True)

    id: str
    routing_key: str
    message_id: str | None
    reason: str
    attempts: int
    dead_lettered_at: datetime | None
    headers: dict[str, Any]
    body: str
    body_encoding: Literal["utf-8", "base64"]


class DeadLetterList(BaseModel):
    service: str
    count: int
    dead_letters: list[DeadLetterView]


class ReplayRequest(BaseModel):
    """Which dead letters to replay; no `ids` (or no body) means all of them."""

    model_config = ConfigDict(extra="forbid")

    ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]] | None,
        Field(max_length=MAX_REPLAY_IDS),
    ] = None


class ReplayResult(BaseModel):
    replayed: int


def dead_letter_view(letter: DeadLetter) -> DeadLetterView:
    """`letter` as shown over HTTP, secrets masked and the body made JSON-safe."""
    try:
        body = _masked_body(letter.body.decode("utf-8"))
        encoding: Literal["utf-8", "base64"] = "utf-8"
    except UnicodeDecodeError:
        body = base64.b64encode(letter.body).decode("ascii")
        encoding = "base64"
    return DeadLetterView(
        id=letter.dead_letter_id,
        routing_key=letter.routing_key,
        message_id=letter.message_id,
        reason=redact_text(_SQL_DETAIL.sub("", letter.reason)),
        attempts=letter.attempts,
        dead_lettered_at=letter.dead_lettered_at,
        headers=_safe_mapping(letter.headers),
        body=body,
        body_encoding=encoding,
    )


def dead_letter_team(letter: DeadLetter) -> str | None:
    """The team whose event `letter` holds: `team` of the event's data (binary mode) or
    of `data` in a structured event; None when the body says no team."""
    try:
        document = json.loads(letter.body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    data = document.get("data") if "specversion" in document else document
    team = data.get("team") if isinstance(data, dict) else None
    return team if isinstance(team, str) else None


def _masked_body(text: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        return redact_text(text)
    return json.dumps(redact_value(document), ensure_ascii=False)


def _safe_mapping(values: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        str(key): REDACTED if is_secret_key(str(key)) else _safe_value(value)
        for key, value in values.items()
    }


def _safe_value(value: Any) -> Any:
    """A header value as JSON: AMQP headers hold bytes, datetimes and nested tables."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        try:
            return redact_text(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return _safe_mapping(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe_value(item) for item in value]
    return redact_text(str(value))


def dead_letters_router(service: str, transport: Transport, caller: CallerDependency) -> APIRouter:
    """Routes `GET /dead-letters` and `POST /dead-letters/replay` for `service`'s DLQ.

    `caller` answers the request's verified caller (401 without one); both routes
    need the `admin` scope (403). Listing shows up to `limit` (1..1000, default
    100) of the letters the caller may see, oldest first, without removing them.
    Replay takes `{"ids": [...]}` (or no body: all the caller may see) and answers
    `{"replayed": n}`; ids of letters the caller may not see are ignored. A
    transport failure answers 503 problem+json (`Unavailable`) without the
    failure's text; an `MlplaneError` the transport raises keeps its own status.
    """
    router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

    async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
        require_scope(who, ADMIN_SCOPE)
        return who

    Admin = Annotated[Caller, Depends(admin)]

    async def visible(who: Caller, limit: int) -> list[DeadLetter]:
        if who.team is None:
            return list(await transport.dead_letters(service, limit=limit))
        letters = await transport.dead_letters(service, limit=TEAM_SCAN_LIMIT)
        return [letter for letter in letters if dead_letter_team(letter) == who.team][:limit]

    @router.get(
        "",
        summary="List the service's dead-lettered messages, oldest first",
        responses=_PROBLEM_RESPONSES,
    )
    async def list_dead_letters(
        who: Admin,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    ) -> DeadLetterList:
        try:
            letters = await visible(who, limit)
        except MlplaneError:
            raise
        except Exception as exc:
            _log.error("listing dead letters of %s failed", service, exc_info=exc)
            raise Unavailable(f"The dead-letter queue of {service} cannot be read now.") from exc
        views = [dead_letter_view(letter) for letter in letters[:limit]]
        return DeadLetterList(service=service, count=len(views), dead_letters=views)

    @router.post(
        "/replay",
        summary="Move dead letters (all, or the ones named) back to the service's queue",
        responses=_PROBLEM_RESPONSES,
    )
    async def replay_dead_letters(
        who: Admin,
        request: Annotated[ReplayRequest | None, Body()] = None,
    ) -> ReplayResult:
        ids = None if request is None or request.ids is None else list(dict.fromkeys(request.ids))
        if ids is not None and not ids:
            # An empty list names no message; never let it fall through to "all".
            return ReplayResult(replayed=0)
        try:
            if who.team is not None:
                # A team's admin replays only letters of its team: "all" means all of those.
                own = [letter.dead_letter_id for letter in await visible(who, TEAM_SCAN_LIMIT)]
                owned = frozenset(own)
                ids = own if ids is None else [i for i in ids if i in owned]
                if not ids:
                    return ReplayResult(replayed=0)
            replayed = await transport.replay(service, ids)
        except MlplaneError:
            raise
        except Exception as exc:
            _log.error("replaying dead letters of %s failed", service, exc_info=exc)
            raise Unavailable(f"The dead letters of {service} cannot be replayed now.") from exc
        _log.info(
            "replayed %d dead letters of %s",
            replayed,
            service,
            extra={
                "requested_ids": len(ids) if ids is not None else "all",
                "principal": who.principal,
            },
        )
        return ReplayResult(replayed=replayed)

    return router
