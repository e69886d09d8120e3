"""Log lines for a person at a terminal: short, coloured, the extras as key=value.

JSON lines are for machines (a log shipper, `jq`); a person running `make run` in a
terminal reads `12:01:02 INFO  registry  model fraud registered  version=7`. The same
records, the same redaction: only the rendering differs, as uvicorn and MLflow do.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_QUIET = frozenset({*RESERVED_ATTRS, "color_message", "trace_id", "span_id", "taskName"})


class HumanFormatter(logging.Formatter):
    """`time LEVEL service  message  key=value ...`, the level coloured when `colour`."""

    def __init__(self, service: str, *, colour: bool) -> None:
        super().__init__()
        self._service = service
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, tz=UTC).astimezone().strftime("%H:%M:%S")
        level = f"{record.levelname:<7}"
        if self._colour:
            level = f"{_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        extras = "  ".join(
            f"{key}={_shown(value)}"
            for key, value in record.__dict__.items()
            if key not in _QUIET and not key.startswith("_")
        )
        line = f"{at} {level} {self._service}  {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, default=str)
