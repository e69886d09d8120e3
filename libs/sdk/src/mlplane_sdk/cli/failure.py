"""How the CLI reports a failure: one plain sentence on stderr, no traceback, and an
exit code that says what kind of failure it was (docs/cli.md, "Errors and exit codes").

| code | meaning |
|---|---|
| 0 | done |
| 1 | the platform refused or failed the request (its problem's detail is printed) |
| 2 | the command line is wrong (typer's usage errors) |
| 3 | the platform could not be reached |
| 4 | not signed in, or the key was refused (401) or lacks the scope (403) |
| 5 | what was asked for does not exist (404) |
| 130 | interrupted (Ctrl+C) |
"""

from __future__ import annotations

from typing import NoReturn

import typer
from mlplane_runtime.telemetry.logging import redact_text

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORIZED = 4
EXIT_NOT_FOUND = 5
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print `error: <message>` (secrets masked) to stderr and exit with `code`."""
    typer.echo(f"error: {redact_text(message)}", err=True)
    raise typer.Exit(code)
