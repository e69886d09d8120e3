"""Structured JSON logs: one object per line, carrying the trace and never a secret.

Every record gets `timestamp`, `level`, `logger`, `message`, `service` and the
active span's `trace_id` / `span_id` (null outside a span), so Loki lines link to
Tempo traces. A filter on the handler redacts secrets before anything is written:
passwords in URLs, `Authorization` values and bearer tokens, `key=value` pairs and
`extra` fields whose key names a password, secret, token or API key.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from mlplane_runtime.telemetry.human import HumanFormatter

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|authorization|cookie"
    r"|credential|private[_-]?key|access[_-]?key",
    re.IGNORECASE,
)
# scheme://user:password@host: the password ends at '@' and never holds '/' (it
# would be percent-encoded), which keeps `host:port/path@x` from looking like one.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@")
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?P<scheme>bearer|basic|digest|token|apikey)\s+)?[^\s\"',;}\]]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
# A name whose last word names a secret (`db_password`, `AWS_SECRET_ACCESS_KEY`,
# `client_secret`), then `=` or `:` and the value. A name that merely contains such a
# word (`api_key_notify: NOTIFY when...`, `token_count: 3`) names something else: its
# value is left alone (mask values, not words).
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<head>\b[\w.\-]*(?:passw(?:or)?d|secret|token|api[_-]?key|apikey|private[_-]?key"
    r"|access[_-]?key|credentials?)[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"',;&}\]]+)",
    re.IGNORECASE,
)
# Attributes uvicorn adds that are noise in JSON (ANSI-coloured copies of the message).
_DROPPED_ATTRS = ("color_message",)
_HANDLER_MARK = "_mlplane_json_handler"


def redact_text(text: str) -> str:
    """`text` with URL passwords, authorization values and secret assignments masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)
    text = _AUTHORIZATION.sub(_mask_authorization, text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    return _SECRET_ASSIGNMENT.sub(_mask_assignment, text)


def _mask_authorization(match: re.Match[str]) -> str:
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['head']}{scheme}{REDACTED}"


def _mask_assignment(match: re.Match[str]) -> str:
    return f"{match['head']}{REDACTED}"


def is_secret_key(key: str) -> bool:
    """True when a field named `key` holds a secret (password, token, api_key, ...)."""
    return bool(_SECRET_KEY.search(key))


def redact_value(value: Any) -> Any:
    """`value` with secrets masked: strings redacted, mappings by key, sequences itemwise."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return value


class SecretRedactingFilter(logging.Filter):
    """Rewrites each record so that no secret reaches any formatter after it.

    The message is rendered and redacted (its args dropped), `extra` fields named
    like secrets are masked and the others redacted, and the traceback is rendered
    into `exc_text` and redacted (exception texts often quote connection URLs).
    """

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):
            record.msg = redact_value(record.msg)
        else:
            record.msg = redact_text(record.getMessage())
            record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            record.__dict__[key] = REDACTED if is_secret_key(key) else redact_value(value)
        if record.exc_info:
            record.exc_text = self._plain.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime", "trace_id", "span_id"}


class TraceContextFilter(logging.Filter):
    """Adds the active span's `trace_id` and `span_id` (hex, or None) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None
        return True


def json_formatter(service: str) -> JsonFormatter:
    """The JSON formatter of every mlplane process (`service` as a static field)."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": service},
        reserved_attrs=[*RESERVED_ATTRS, *_DROPPED_ATTRS],
        timestamp=True,
    )


def formatter_for(service: str, format: str, stream: TextIO) -> logging.Formatter:
    """JSON lines (`json`), or short human lines (`text`; `auto`: when `stream` is a
    terminal, coloured). Raises ValueError for another format name."""
    if format not in ("json", "text", "auto"):
        raise ValueError(f"unknown log format {format!r}: json, text or auto")
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    if format == "text" or (format == "auto" and terminal):
        return HumanFormatter(service, colour=terminal)
    return json_formatter(service)


CHATTY_CLIENT_LOGGERS = ("httpx", "httpcore", "botocore", "aiobotocore", "urllib3")
"""Libraries that log each request (URL and query included) below WARNING."""


def configure_logging(
    service: str, level: str = "INFO", *, stream: TextIO | None = None, format: str = "json"
) -> None:
    """Send every log record of the process as one JSON line to `stream` (stderr).

    Installs one handler on the root logger (replacing the one a previous call
    installed, leaving other handlers alone) with the trace and redaction filters,
    and routes uvicorn's loggers through it. `uvicorn.access` is quieted to WARNING
    because the service app writes its own access log; run uvicorn with
    `log_config=None` so it does not reconfigure logging at start-up.

    Raises ValueError when `level` is not a logging level name.
    """
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}")
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(TraceContextFilter())
    handler.addFilter(SecretRedactingFilter())
    handler.setFormatter(formatter_for(service, format, target))

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # HTTP clients narrate every request at INFO with its full URL: one line per OCI
    # blob chunk, and upload state tokens or presigned signatures in the query. Their
    # warnings and errors still come through.
    for name in CHATTY_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
