"""What every platform command shares: its target, its client, its output, its errors.

The root command's `--profile`, `--url` and `--api-key` (or `MLPLANE_PROFILE`,
`MLPLANE_URL`, `MLPLANE_API_KEY`) choose the target; each command's `--output`
(`-o`, or `MLPLANE_OUTPUT`) prints a table for people or the API's JSON for programs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlplane_sdk.cli.failure import (
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    fail,
)
from mlplane_sdk.cli.profiles import ProfileError, Profiles, Target
from mlplane_sdk.client import (
    MlplaneApiError,
    MlplaneClient,
    MlplaneClientError,
    MlplaneUnreachable,
)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output", "-o", envvar="MLPLANE_OUTPUT", help="table for people, json for programs."
    ),
]

Row = Sequence[Any]
_UNFOLDED = 10_000


def target_of(ctx: typer.Context) -> Target:
    """The target the root command's options chose (see `profiles`)."""
    options: dict[str, str | None] = ctx.find_root().obj or {}
    try:
        return Profiles.load().resolve(
            options.get("url"), options.get("api_key"), options.get("profile")
        )
    except ProfileError as exc:
        fail(str(exc))


@contextmanager
def platform(ctx: typer.Context, *, timeout_s: float = 30.0) -> Iterator[MlplaneClient]:
    """A client of the chosen platform; its errors end the command with their exit code."""
    target = target_of(ctx)
    try:
        with MlplaneClient(target.url, api_key=target.api_key, timeout_s=timeout_s) as client:
            yield client
    except MlplaneUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except MlplaneApiError as exc:
        if exc.status in (401, 403):
            hint = "" if target.api_key else " (no API key: run `mlplane login`)"
            fail(f"{exc}{hint}", EXIT_UNAUTHORIZED)
        if exc.status == 404:
            fail(str(exc), EXIT_NOT_FOUND)
        fail(str(exc))
    except MlplaneClientError as exc:
        fail(str(exc))


def emit(
    data: Any,
    output: Output,
    *,
    columns: Sequence[str] = (),
    rows: Callable[[Any], Sequence[Row]] | None = None,
    empty: str = "nothing to show",
) -> None:
    """Print `data`: as JSON, or as a table of `rows(data)` under `columns`."""
    if output is Output.JSON:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    if rows is None:
        _fields(data)
        return
    found = list(rows(data))
    if not found:
        typer.echo(empty)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in found:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console = Console()
    if not console.is_terminal:
        # Piped into grep or a file: one row a line, however long, never folded.
        console = Console(width=_UNFOLDED)
    console.print(table)


def _fields(data: Any) -> None:
    """A mapping as `key: value` lines, nested mappings and lists as compact JSON."""
    if not isinstance(data, dict):
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    width = max((len(str(key)) for key in data), default=0)
    for key, value in data.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        typer.echo(f"{str(key).ljust(width)}  {'-' if shown is None else shown}")


def said(message: str, output: Output, data: Any) -> None:
    """A one-line confirmation for people, or the API's answer for programs."""
    if output is Output.JSON:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(message)
