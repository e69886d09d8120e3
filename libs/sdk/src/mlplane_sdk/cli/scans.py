"""`mlplane scans ...` and `mlplane exceptions ...`: the scanner's verdicts and waivers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from mlplane_sdk.cli.session import Output, OutputOption, emit, platform, said

SCANNER = "/v1/scanner"

scans_app = typer.Typer(help="Image scans, their findings and verdicts.", no_args_is_help=True)
exceptions_app = typer.Typer(
    help="Accepted findings per environment (owner, reason, expiry).", no_args_is_help=True
)


@scans_app.command("list")
def list_scans(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    output: OutputOption = Output.TABLE,
) -> None:
    """The team's latest scans."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{SCANNER}/scans", params={"limit": limit})
    emit(
        answer,
        output,
        columns=("ID", "MODEL", "VERSION", "STATE", "VERDICT", "IMAGE", "FINISHED"),
        rows=lambda a: [
            (
                s["id"],
                s["model"],
                s["version"],
                s["state"],
                s["verdict"],
                s["image"],
                s["finished_at"],
            )
            for s in a["scans"]
        ],
        empty="no scans yet",
    )


@scans_app.command("show")
def show_scan(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="The image digest, sha256:...")],
    output: OutputOption = Output.TABLE,
) -> None:
    """An image's scans: findings, and the verdict per environment under its policy."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{SCANNER}/scans/{digest}")
    if output is Output.JSON or not answer["scans"]:
        emit(answer, output)
        return
    latest = answer["scans"][0]
    for environment, verdict in latest["verdicts"].items():
        typer.echo(
            f"{environment}: {verdict.get('verdict')}  {'; '.join(verdict.get('reasons', []))}"
        )
    emit(
        latest,
        output,
        columns=("SEVERITY", "KIND", "ID", "PACKAGE", "INSTALLED", "FIXED", "TITLE"),
        rows=lambda s: [
            (
                f["severity"],
                f["kind"],
                f["id"],
                f["package"],
                f["installed_version"],
                f["fixed_version"],
                f["title"],
            )
            for f in s["findings"]
        ],
        empty="no findings",
    )


@exceptions_app.command("add")
def add_exception(
    ctx: typer.Context,
    finding: Annotated[str, typer.Argument(help="The finding's id, e.g. CVE-2024-1234.")],
    environment: Annotated[str, typer.Option("--env", "-e", help="The environment it applies to.")],
    owner: Annotated[str, typer.Option(help="Who answers for it.")],
    reason: Annotated[str, typer.Option(help="Why it is accepted.")],
    expires: Annotated[
        datetime, typer.Option(help="When it stops applying (ISO 8601, with a time zone).")
    ],
    package: Annotated[str | None, typer.Option(help="Only in this package.")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Accept a finding in an environment until it expires (needs admin)."""
    if expires.tzinfo is None:
        raise typer.BadParameter("--expires needs a time zone, e.g. 2027-01-31T00:00:00Z")
    body = {
        "finding_id": finding,
        "owner": owner,
        "reason": reason,
        "expires_at": expires.isoformat(),
        "package": package,
    }
    with platform(ctx) as client:
        answer = client.call(
            "POST",
            f"{SCANNER}/policies/{environment}/exceptions",
            json={k: v for k, v in body.items() if v is not None},
        )
    said(f"{finding} accepted in {environment} until {expires.isoformat()}", output, answer)


@exceptions_app.command("list")
def list_exceptions(
    ctx: typer.Context,
    environment: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """The environment's exceptions, from its current policy."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{SCANNER}/policies/{environment}")
    emit(
        answer,
        output,
        columns=("FINDING", "PACKAGE", "OWNER", "EXPIRES", "REASON"),
        rows=lambda p: [
            (e["finding_id"], e.get("package"), e["owner"], e["expires_at"], e["reason"])
            for e in p.get("exceptions", [])
        ],
        empty=f"no exceptions in {environment}",
    )


@exceptions_app.command("remove")
def remove_exception(
    ctx: typer.Context,
    finding: Annotated[str, typer.Argument(help="The finding's id.")],
    environment: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """Stop accepting a finding (needs admin)."""
    with platform(ctx) as client:
        answer = client.call("DELETE", f"{SCANNER}/policies/{environment}/exceptions/{finding}")
    said(f"{finding} no longer accepted in {environment}", output, answer)
