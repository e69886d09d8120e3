"""The `mlplane` command: run the platform, run one service, inspect dead letters."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli.dead_letters import dead_letters_app
from mlplane_sdk.cli.migrate import migrate
from mlplane_sdk.cli.run import serve, up
from mlplane_sdk.version import VERSION

app = typer.Typer(
    name="mlplane",
    help="mlplane: an MLOps control plane. Run it, and look after it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mlplane {VERSION}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """mlplane: an MLOps control plane. Run it, and look after it."""


app.command("up")(up)
app.command("serve")(serve)
app.command("migrate")(migrate)
app.add_typer(dead_letters_app, name="dead-letters")


def main() -> None:
    """Entry point of the `mlplane` console script."""
    app()


__all__ = ["app", "main"]
