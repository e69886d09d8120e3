"""`mlplane models|versions|aliases ...`: the registry's models, versions and aliases."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlplane_sdk.cli.session import Output, OutputOption, emit, platform, said

REGISTRY = "/v1/registry"

models_app = typer.Typer(help="The team's models.", no_args_is_help=True)
versions_app = typer.Typer(
    help="Versions of a model, their lifecycle and lineage.", no_args_is_help=True
)
aliases_app = typer.Typer(
    help="Names that point at a version (champion, challenger).", no_args_is_help=True
)

Model = Annotated[str, typer.Argument(help="The model's name.")]
Version = Annotated[int, typer.Argument(help="The version number.", min=1)]


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option(help="Only names starting so.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    output: OutputOption = Output.TABLE,
) -> None:
    """List the team's models."""
    params: dict[str, Any] = {"limit": limit}
    if prefix:
        params["name_prefix"] = prefix
    with platform(ctx) as client:
        answer = client.call("GET", f"{REGISTRY}/models", params=params)
    emit(
        answer,
        output,
        columns=("NAME", "DESCRIPTION", "UPDATED"),
        rows=lambda a: [(m["name"], m["description"], m["updated_at"]) for m in a["models"]],
        empty="no models yet",
    )


@models_app.command("show")
def show_model(ctx: typer.Context, model: Model, output: OutputOption = Output.TABLE) -> None:
    """One model: its description, tags and latest versions."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{REGISTRY}/models/{model}")
        versions = client.call("GET", f"{REGISTRY}/versions", params={"model": model, "limit": 20})
    if output is Output.JSON:
        emit({**answer, "versions": versions["versions"]}, output)
        return
    emit({k: answer[k] for k in ("name", "description", "tags", "created_at")}, output)
    typer.echo("")
    _versions_table(versions, output)


@models_app.command("create")
def create_model(
    ctx: typer.Context,
    model: Model,
    description: Annotated[str, typer.Option(help="What the model does.")] = "",
    output: OutputOption = Output.TABLE,
) -> None:
    """Create a model (`mlplane upload --register` creates a new one too)."""
    with platform(ctx) as client:
        answer = client.call(
            "POST", f"{REGISTRY}/models", json={"name": model, "description": description}
        )
    said(f"created model {model}", output, answer)


@models_app.command("delete")
def delete_model(
    ctx: typer.Context,
    model: Model,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    output: OutputOption = Output.TABLE,
) -> None:
    """Delete a model with its versions and aliases."""
    if not yes:
        typer.confirm(f"delete model {model} with all its versions?", abort=True)
    with platform(ctx) as client:
        client.call("DELETE", f"{REGISTRY}/models/{model}")
    said(f"deleted model {model}", output, {"deleted": model})


@versions_app.command("list")
def list_versions(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    alias: Annotated[str | None, typer.Option(help="Only the version this alias names.")] = None,
    stage: Annotated[
        str | None, typer.Option(help="registered, built, scanned, deployed...")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Page on from here (next_cursor).")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """List versions, newest first within each page, with their lifecycle stage."""
    params = {"model": model, "alias": alias, "stage": stage, "limit": limit, "cursor": cursor}
    with platform(ctx) as client:
        answer = client.call(
            "GET", f"{REGISTRY}/versions", params={k: v for k, v in params.items() if v}
        )
    _versions_table(answer, output)
    if output is Output.TABLE and answer.get("next_cursor"):
        typer.echo(f"more: --cursor {answer['next_cursor']}")


def _versions_table(answer: dict[str, Any], output: Output) -> None:
    emit(
        answer,
        output,
        columns=("MODEL", "VERSION", "STAGE", "SCAN", "DEPLOYED", "ALIASES", "CREATED"),
        rows=lambda a: [
            (
                v["model"],
                v["version"],
                v["lifecycle"]["stage"],
                v["lifecycle"]["scan_verdict"],
                ",".join(v["lifecycle"]["deployed_environments"]) or None,
                ",".join(v["aliases"]) or None,
                v["created_at"],
            )
            for v in a["versions"]
        ],
        empty="no versions",
    )


@versions_app.command("show")
def show_version(
    ctx: typer.Context, model: Model, version: Version, output: OutputOption = Output.TABLE
) -> None:
    """One version: lifecycle (built, scanned, deployed per environment) and lineage."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{REGISTRY}/models/{model}/versions/{version}")
    if output is Output.JSON:
        emit(answer, output)
        return
    lifecycle, lineage, artifact = answer["lifecycle"], answer["lineage"], answer["artifact"]
    emit(
        {
            "model": answer["model"],
            "version": answer["version"],
            "framework": answer["framework"],
            "stage": lifecycle["stage"],
            "image": lifecycle["image"],
            "scan verdict": lifecycle["scan_verdict"],
            "deployments": lifecycle["deployments"] or None,
            "build failure": lifecycle["build_failure"],
            "aliases": answer["aliases"] or None,
            "artifact": artifact.get("uri"),
            "sha256": artifact.get("sha256"),
            "size bytes": artifact.get("size_bytes"),
            "commit": lineage.get("commit_sha"),
            "repository": lineage.get("git_repository"),
            "ci run": lineage.get("ci_run_url"),
            "registered by": answer["registered_by"],
            "created": answer["created_at"],
        },
        output,
    )


@versions_app.command("register")
def register_version(
    ctx: typer.Context,
    model: Model,
    uri: Annotated[str, typer.Option(help="The artifact's URI (what `mlplane upload` printed).")],
    sha256: Annotated[str, typer.Option(help="The artifact's sha256 (hex).")],
    size: Annotated[int, typer.Option(help="The artifact's size in bytes.", min=1)],
    repository: Annotated[str, typer.Option(help="The git repository it was trained from.")],
    commit: Annotated[str, typer.Option(help="The commit it was trained from (40 hex).")],
    ci_run_url: Annotated[str, typer.Option(help="The CI run that trained it.")],
    framework: Annotated[str, typer.Option(help="sklearn, pytorch, onnx, ...")] = "sklearn",
    output: OutputOption = Output.TABLE,
) -> None:
    """Register the next version of a model from an uploaded artifact."""
    body = {
        "framework": framework,
        "artifact": {"uri": uri, "size_bytes": size, "sha256": sha256},
        "lineage": {"git_repository": repository, "commit_sha": commit, "ci_run_url": ci_run_url},
    }
    with platform(ctx) as client:
        answer = client.call("POST", f"{REGISTRY}/models/{model}/versions", json=body)
    said(f"registered {model} version {answer['version']}", output, answer)


@aliases_app.command("set")
def set_alias(
    ctx: typer.Context,
    model: Model,
    alias: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    version: Version,
    output: OutputOption = Output.TABLE,
) -> None:
    """Point an alias at a version (environments following it deploy it)."""
    with platform(ctx) as client:
        answer = client.call(
            "PUT", f"{REGISTRY}/models/{model}/aliases/{alias}", json={"version": version}
        )
    said(f"{model}@{alias} -> version {version}", output, answer)


@aliases_app.command("show")
def show_alias(
    ctx: typer.Context,
    model: Model,
    alias: Annotated[str, typer.Argument(help="The alias.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """The version an alias points at."""
    with platform(ctx) as client:
        answer = client.call("GET", f"{REGISTRY}/models/{model}/aliases/{alias}")
    if output is Output.JSON:
        emit(answer, output)
        return
    version = answer["version"]
    typer.echo(f"{model}@{alias} -> version {version['version']} ({version['lifecycle']['stage']})")


@aliases_app.command("delete")
def delete_alias(
    ctx: typer.Context,
    model: Model,
    alias: Annotated[str, typer.Argument(help="The alias.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """Remove an alias."""
    with platform(ctx) as client:
        client.call("DELETE", f"{REGISTRY}/models/{model}/aliases/{alias}")
    said(f"removed {model}@{alias}", output, {"deleted": alias})
