"""Run `configure_logging` into a buffer for one test and restore the loggers afterwards.

`configure_logging` changes process-wide state (the root logger's handlers and
level, uvicorn's loggers); tests that call it must leave that state as they found it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mlplane_runtime.telemetry.logging import configure_logging

_TOUCHED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@dataclass
class CapturedLogs:
    """What the JSON handler wrote: raw text and the parsed lines."""

    stream: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line written, each parsed as one JSON object (fails if one is not)."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def by_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("logger") == name]


@contextmanager
def captured_json_logs(
    service: str = "test-service", level: str = "DEBUG"
) -> Iterator[CapturedLogs]:
    """Configure JSON logging into a buffer; undo it on exit."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in _TOUCHED_LOGGERS
        for lg in [logging.getLogger(name)]
    }
    captured = CapturedLogs()
    configure_logging(service, level, stream=captured.stream)
    try:
        yield captured
    finally:
        for handler in list(root.handlers):
            if handler not in saved_root[0]:
                root.removeHandler(handler)
        root.setLevel(saved_root[1])
        for name, (handlers, level_no, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.setLevel(level_no)
            lg.propagate = propagate
