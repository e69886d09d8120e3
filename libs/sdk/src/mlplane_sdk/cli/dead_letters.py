"""`mlplane dead-letters list|replay`: a service's dead-letter queue, over its HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli.failure import fail
from mlplane_sdk.client import DEFAULT_URL, MlplaneClient, MlplaneClientError

dead_letters_app = typer.Typer(
    help="Inspect and replay the messages a service could not handle.",
    no_args_is_help=True,
)

ServiceOption = Annotated[
    str, typer.Option("--service", "-s", help="The service whose dead letters to use.")
]
UrlOption = Annotated[
    str, typer.Option("--url", envvar="MLPLANE_URL", help="Base URL of the platform's gateway.")
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="MLPLANE_API_KEY",
        help="An API key with the admin scope (a team's admin sees its own team's letters).",
        show_default=False,
    ),
]

_REASON_WIDTH = 80


@dead_letters_app.command("list")
def list_dead_letters(
    service: ServiceOption,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """List a service's dead-lettered messages, oldest first (nothing is removed)."""
    try:
        with MlplaneClient(url, api_key=api_key) as client:
            answer = client.dead_letters(service, limit=limit)
    except MlplaneClientError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    if not answer.dead_letters:
        typer.echo(f"no dead letters in {service}")
        return
    rows = [("ID", "EVENT TYPE", "TRIES", "DEAD-LETTERED AT", "REASON")]
    for letter in answer.dead_letters:
        when = (
            letter.dead_lettered_at.isoformat(timespec="seconds")
            if letter.dead_lettered_at
            else "-"
        )
        rows.append(
            (letter.id, letter.routing_key, str(letter.attempts), when, _short(letter.reason))
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]))


@dead_letters_app.command("replay")
def replay_dead_letters(
    service: ServiceOption,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="A dead letter to replay (repeatable); none given: all of them."),
    ] = None,
) -> None:
    """Move a service's dead letters back to its queue for another try."""
    try:
        with MlplaneClient(url, api_key=api_key) as client:
            replayed = client.replay_dead_letters(service, ids)
    except MlplaneClientError as exc:
        fail(str(exc))
    typer.echo(f"replayed {replayed} dead letter(s) of {service}")


def _short(reason: str) -> str:
    line = " ".join(reason.split())
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 1] + "…"
