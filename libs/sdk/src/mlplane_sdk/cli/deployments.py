"""`mlplane deploy|promote|approve|rollback|deployments ...`: the deployer's API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlplane_sdk.cli.session import Output, OutputOption, emit, platform, said

DEPLOYER = "/v1/deployer"

deployments_app = typer.Typer(help="Deployments and their history.", no_args_is_help=True)

DeploymentId = Annotated[str, typer.Argument(help="The deployment's id.")]


def _summary(d: dict[str, Any]) -> str:
    line = f"deployment {d['id']}: {d['model']} v{d['version']} to {d['environment']}, {d['phase']}"
    return f"{line} ({d['message']})" if d.get("message") else line


def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model.")],
    environment: Annotated[str, typer.Option("--env", "-e", help="dev, staging, prod, ...")],
    version: Annotated[int | None, typer.Option(min=1, help="The version to deploy.")] = None,
    alias: Annotated[str | None, typer.Option(help="Deploy the version this alias names.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Ask for a deployment; the environment's policy decides (every reason if denied)."""
    if (version is None) == (alias is None):
        raise typer.BadParameter("give exactly one of --version and --alias")
    body = {"model": model, "environment": environment, "version": version, "alias": alias}
    if reason:
        body["reason"] = reason
    with platform(ctx) as client:
        answer = client.call(
            "POST", f"{DEPLOYER}/deployments", json={k: v for k, v in body.items() if v}
        )
    said(_summary(answer), output, answer)


def promote(
    ctx: typer.Context, deployment: DeploymentId, output: OutputOption = Output.TABLE
) -> None:
    """Ask the same version for the next environment, through its rules."""
    with platform(ctx) as client:
        answer = client.call("POST", f"{DEPLOYER}/deployments/{deployment}/promote")
    said(_summary(answer), output, answer)


def approve(
    ctx: typer.Context, deployment: DeploymentId, output: OutputOption = Output.TABLE
) -> None:
    """Approve a deployment (needs deploy:approve; never your own request)."""
    with platform(ctx) as client:
        answer = client.call("POST", f"{DEPLOYER}/deployments/{deployment}/approvals")
    said(_summary(answer), output, answer)


def rollback(
    ctx: typer.Context, deployment: DeploymentId, output: OutputOption = Output.TABLE
) -> None:
    """Roll an environment back from this deployment (a revert commit in the GitOps repo)."""
    with platform(ctx) as client:
        answer = client.call("POST", f"{DEPLOYER}/deployments/{deployment}/rollback")
    said(f"rollback queued: {_summary(answer)}", output, answer)


@deployments_app.command("list")
def list_deployments(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's.")] = None,
    environment: Annotated[
        str | None, typer.Option("--env", "-e", help="Only this environment's.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    output: OutputOption = Output.TABLE,
) -> None:
    """The team's deployments, newest first."""
    params = {"model": model, "environment": environment, "limit": limit}
    with platform(ctx) as client:
        answer = client.call(
            "GET", f"{DEPLOYER}/deployments", params={k: v for k, v in params.items() if v}
        )
    emit(
        answer,
        output,
        columns=("ID", "MODEL", "VERSION", "ENV", "PHASE", "WORK", "REQUESTED BY"),
        rows=lambda a: [
            (
                d["id"],
                d["model"],
                d["version"],
                d["environment"],
                d["phase"],
                d.get("work"),
                d.get("requested_by"),
            )
            for d in a["deployments"]
        ],
        empty="no deployments",
    )


@deployments_app.command("show")
def show_deployment(
    ctx: typer.Context, deployment: DeploymentId, output: OutputOption = Output.TABLE
) -> None:
    """One deployment with its history: each decision and phase change, and who caused it."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{DEPLOYER}/deployments/{deployment}")
    if output is Output.JSON:
        emit(answer, output)
        return
    typer.echo(_summary(answer))
    emit(
        answer,
        output,
        columns=("AT", "WHAT", "BY", "DETAIL"),
        rows=lambda a: [
            (
                h["at"],
                h["kind"] if not h.get("phase") else f"{h['kind']}: {h['phase']}",
                h["caused_by"],
                h.get("detail") or "; ".join(str(r) for r in h.get("reasons", [])) or None,
            )
            for h in a.get("history") or []
        ],
        empty="no history yet",
    )
