"""The `mlplane` command: run the platform, and work with it (docs/cli.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli import deployments
from mlplane_sdk.cli.dead_letters import dead_letters_app
from mlplane_sdk.cli.drift import drift_app
from mlplane_sdk.cli.events import events_app
from mlplane_sdk.cli.login import login, profiles_app
from mlplane_sdk.cli.migrate import migrate
from mlplane_sdk.cli.models import aliases_app, models_app, versions_app
from mlplane_sdk.cli.run import serve, up
from mlplane_sdk.cli.scans import exceptions_app, scans_app
from mlplane_sdk.cli.upload import upload
from mlplane_sdk.version import VERSION

app = typer.Typer(
    name="mlplane",
    help="mlplane: an MLOps control plane. Run it, and work with it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mlplane {VERSION}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(envvar="MLPLANE_PROFILE", help="The saved profile to use (`mlplane login`)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(envvar="MLPLANE_URL", help="The platform's gateway (overrides the profile)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="MLPLANE_API_KEY",
            help="The API key (overrides the profile).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """mlplane: an MLOps control plane. Run it, and work with it."""
    ctx.obj = {"profile": profile, "url": url, "api_key": api_key}


app.command("up")(up)
app.command("serve")(serve)
app.command("migrate")(migrate)
app.command("login")(login)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")
app.add_typer(versions_app, name="versions")
app.add_typer(aliases_app, name="aliases")
app.command("upload")(upload)
app.command("deploy")(deployments.deploy)
app.command("promote")(deployments.promote)
app.command("approve")(deployments.approve)
app.command("rollback")(deployments.rollback)
app.add_typer(deployments.deployments_app, name="deployments")
app.add_typer(scans_app, name="scans")
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(drift_app, name="drift")
app.add_typer(events_app, name="events")
app.add_typer(dead_letters_app, name="dead-letters")


def main() -> None:
    """Entry point of the `mlplane` console script."""
    app()


__all__ = ["app", "main"]
