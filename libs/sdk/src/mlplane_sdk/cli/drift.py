"""`mlplane drift reports|show`: the drift service's reports."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli.session import Output, OutputOption, emit, platform

DRIFT = "/v1/drift"

drift_app = typer.Typer(
    help="Drift reports per model, version and environment.", no_args_is_help=True
)


@drift_app.command("reports")
def list_reports(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int | None, typer.Option(min=1, help="Only this version's.")] = None,
    environment: Annotated[
        str | None, typer.Option("--env", "-e", help="Only this environment's.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    output: OutputOption = Output.TABLE,
) -> None:
    """A model's drift reports, newest first."""
    params = {"version": version, "environment": environment, "limit": limit}
    with platform(ctx) as client:
        answer = client.call(
            "GET",
            f"{DRIFT}/models/{model}/reports",
            params={k: v for k, v in params.items() if v is not None},
        )
    reports = answer.get("reports", answer) if isinstance(answer, dict) else answer
    emit(
        answer,
        output,
        columns=("ID", "VERSION", "ENV", "DRIFTED", "SHARE", "SEVERITY", "SAMPLES", "WINDOW END"),
        rows=lambda _: [
            (
                r.get("id"),
                r.get("version"),
                r.get("environment"),
                r.get("dataset_drifted"),
                r.get("drift_share"),
                r.get("severity"),
                r.get("sample_size"),
                r.get("window_end"),
            )
            for r in reports
        ],
        empty="no drift reports",
    )


@drift_app.command("show")
def show_report(
    ctx: typer.Context,
    report: Annotated[str, typer.Argument(help="The report's id.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """One report: every feature's test, score and threshold."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{DRIFT}/reports/{report}")
    if output is Output.JSON:
        emit(answer, output)
        return
    emit(
        answer,
        output,
        columns=("FEATURE", "METHOD", "SCORE", "THRESHOLD", "DRIFTED", "PSI"),
        rows=lambda a: [
            (
                f.get("feature"),
                f.get("method"),
                f.get("score"),
                f.get("threshold"),
                f.get("drifted"),
                f.get("psi"),
            )
            for f in a.get("features", [])
        ],
        empty="no features in this report",
    )
