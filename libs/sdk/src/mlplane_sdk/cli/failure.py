"""How the CLI reports a failure: one plain sentence on stderr and exit code 1, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from mlplane_runtime.telemetry.logging import redact_text

EXIT_FAILURE = 1


def fail(message: str) -> NoReturn:
    """Print `error: <message>` (secrets masked) to stderr and exit with code 1."""
    typer.echo(f"error: {redact_text(message)}", err=True)
    raise typer.Exit(EXIT_FAILURE)
