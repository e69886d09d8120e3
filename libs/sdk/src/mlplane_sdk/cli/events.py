"""`mlplane events tail`: the team's events as they happen (the gateway's SSE stream)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlplane_sdk.cli.session import Output, OutputOption, platform

events_app = typer.Typer(help="The platform's events.", no_args_is_help=True)


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type", "-t", help="Only types starting so, e.g. io.mlplane.image (repeatable)."
        ),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many events.")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Print events as they arrive (Ctrl+C stops); `-o json` prints one JSON event a line."""
    seen = 0
    with platform(ctx) as client:
        data: list[str] = []
        params = {"type_prefix": types} if types else None
        for line in client.stream_lines("/v1/events/stream", params=params):
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
                continue
            if line or not data:
                continue  # comments (keep-alives), ids, event names; wait for a blank line
            event = json.loads("\n".join(data))
            data = []
            _print(event, output)
            seen += 1
            if count is not None and seen >= count:
                return


def _print(event: dict[str, object], output: Output) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(event, separators=(",", ":")))
        return
    typer.echo(f"{event.get('time', '-')}  {event.get('type', '-')}  {event.get('subject', '-')}")
