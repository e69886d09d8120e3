"""`mlplane dead-letters list|replay`: a service's dead-letter queue, over its HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli.session import Output, OutputOption, emit, platform, said

dead_letters_app = typer.Typer(
    help="Inspect and replay the messages a service could not handle.",
    no_args_is_help=True,
)

ServiceOption = Annotated[
    str, typer.Option("--service", "-s", help="The service whose dead letters to use.")
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Base URL of the platform's gateway (overrides the profile)."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="An API key with the admin scope (a team's admin sees its own team's letters).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Same as --output json.", hidden=True)]

_REASON_WIDTH = 80


def _override(ctx: typer.Context, url: str | None, api_key: str | None) -> None:
    """This command's own --url/--api-key win over the root command's and the profile."""
    root = ctx.find_root()
    root.obj = {**(root.obj or {}), **{k: v for k, v in (("url", url), ("api_key", api_key)) if v}}


@dead_letters_app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    service: ServiceOption,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 100,
    as_json: JsonFlag = False,
    output: OutputOption = Output.TABLE,
) -> None:
    """List a service's dead-lettered messages, oldest first (nothing is removed)."""
    _override(ctx, url, api_key)
    with platform(ctx) as client:
        answer = client.dead_letters(service, limit=limit)
    emit(
        answer.model_dump(mode="json"),
        Output.JSON if as_json else output,
        columns=("ID", "EVENT TYPE", "TRIES", "DEAD-LETTERED AT", "REASON"),
        rows=lambda _: [
            (
                letter.id,
                letter.routing_key,
                letter.attempts,
                letter.dead_lettered_at.isoformat(timespec="seconds")
                if letter.dead_lettered_at
                else None,
                _short(letter.reason),
            )
            for letter in answer.dead_letters
        ],
        empty=f"no dead letters in {service}",
    )


@dead_letters_app.command("replay")
def replay_dead_letters(
    ctx: typer.Context,
    service: ServiceOption,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="A dead letter to replay (repeatable); none given: all of them."),
    ] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Move a service's dead letters back to its queue for another try."""
    _override(ctx, url, api_key)
    with platform(ctx) as client:
        replayed = client.replay_dead_letters(service, ids)
    said(f"replayed {replayed} dead letter(s) of {service}", output, {"replayed": replayed})


def _short(reason: str) -> str:
    line = " ".join(reason.split())
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 1] + "…"
