"""Refusing control characters in a request's path and query string, for every route.

PostgreSQL refuses NUL in text, and no name, filter or id of the platform holds a
control character, so a decoded path or query parameter (name or value) holding
one (U+0000-U+001F, U+007F) is answered 422 problem+json naming the parameter,
before any route runs. Bodies are checked by their models (`mlplane_contracts.types`
`PlainText` and `FreeText`).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from mlplane_runtime.problem import VALIDATION_PROBLEM_TYPE, problem_response

CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE: Final = "must not contain control characters"


def control_character_fields(scope: Scope) -> list[str]:
    """The request's parameters holding a control character: `path`, `query.<name>`."""
    fields: list[str] = []
    if CONTROL_CHARACTER.search(str(scope.get("path", ""))):
        fields.append("path")
    query = scope.get("query_string", b"")
    # Only a query string with a percent escape or a raw control byte can hold one.
    if query and (b"%" in query or CONTROL_CHARACTER.search(query.decode("latin-1"))):
        text = query.decode("latin-1")
        for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8"):
            if CONTROL_CHARACTER.search(name) or CONTROL_CHARACTER.search(value):
                field = f"query.{CONTROL_CHARACTER.sub('?', name)}"
                if field not in fields:
                    fields.append(field)
    return fields


class ControlCharacterMiddleware:
    """Answers 422 problem+json to a request whose path or query holds a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = control_character_fields(scope)
        if not fields:
            await self.app(scope, receive, send)
            return
        response = problem_response(
            422,
            title="Invalid request",
            detail=f"The request is not valid: {', '.join(fields)}.",
            problem_type=VALIDATION_PROBLEM_TYPE,
            instance=CONTROL_CHARACTER.sub("?", str(scope.get("path", ""))),
            errors=[
                {"field": field, "message": _MESSAGE, "type": "control_character"}
                for field in fields
            ],
        )
        await response(scope, receive, send)
