"""`mlplane upload FILE --model M`: an artifact to the registry, resumable, with progress.

The registry signs one URL per part and checks the result (docs/services/registry.md,
"Uploading an artifact"); the bytes go straight to object storage, several parts at once. The
file's sha256 is computed first, reading it once in constant memory (the registry
wants it before it plans the upload and verifies it after). An interrupted upload
is resumed by running the same command again (`upload_state`). With `--register`
the version is registered from the uploaded artifact in the same command (the model
is created first when it is new).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mlplane_sdk.cli.failure import EXIT_INTERRUPTED
from mlplane_sdk.cli.models import REGISTRY
from mlplane_sdk.cli.session import Output, OutputOption, platform, said, target_of
from mlplane_sdk.client import MlplaneApiError, MlplaneClient
from mlplane_sdk.upload_state import UploadState, upload_key

READ_SIZE = 8 * 2**20


def upload(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The artifact.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="The model it belongs to.")],
    parallel: Annotated[int, typer.Option(min=1, max=16, help="Parts sent at once.")] = 4,
    part_size_mib: Annotated[
        int | None, typer.Option(min=5, max=5120, help="MiB per part (the registry's default).")
    ] = None,
    register: Annotated[
        bool, typer.Option("--register", help="Register a version from it once uploaded.")
    ] = False,
    repository: Annotated[
        str | None, typer.Option(help="With --register: the git repository.")
    ] = None,
    commit: Annotated[str | None, typer.Option(help="With --register: the commit.")] = None,
    ci_run_url: Annotated[str | None, typer.Option(help="With --register: the CI run.")] = None,
    framework: Annotated[str, typer.Option(help="With --register: the framework.")] = "sklearn",
    output: OutputOption = Output.TABLE,
) -> None:
    """Upload an artifact in parallel parts (resumable: run it again after a failure)."""
    lineage = {"git_repository": repository, "commit_sha": commit, "ci_run_url": ci_run_url}
    if register and not all(lineage.values()):
        raise typer.BadParameter("--register needs --repository, --commit and --ci-run-url")
    target = target_of(ctx)
    key = upload_key(target.url, model, file)
    size = file.stat().st_size
    quiet = output is Output.JSON
    with _progress(quiet) as progress:
        state = UploadState.find(key) or UploadState(key, _sha256(file, size, progress), size)
        state.save()
        with platform(ctx, timeout_s=60.0) as client:
            if not state.plan_usable():
                body: dict[str, Any] = {
                    "size_bytes": size,
                    "sha256": state.sha256,
                    "filename": file.name,
                }
                if part_size_mib:
                    body["part_size"] = part_size_mib * 2**20
                state.new_plan(client.call("POST", f"{REGISTRY}/models/{model}/uploads", json=body))
            elif state.etags and not quiet:
                typer.echo(f"resuming: {len(state.etags)} part(s) already uploaded", err=True)
            _send_parts(client, file, state, parallel, progress)
            assert state.plan is not None
            parts = [{"number": n, "etag": e} for n, e in sorted(state.etags.items())]
            artifact = client.call(
                "POST",
                f"{REGISTRY}/models/{model}/uploads/{state.plan['upload_id']}/complete",
                json={"parts": parts},
            )
            state.forget()
            if register:
                _ensure_model(client, model)
                version = client.call(
                    "POST",
                    f"{REGISTRY}/models/{model}/versions",
                    json={
                        "framework": framework,
                        "artifact": {k: artifact[k] for k in ("uri", "size_bytes", "sha256")},
                        "lineage": lineage,
                    },
                )
                said(
                    f"uploaded {artifact['uri']} and registered {model} version "
                    f"{version['version']}",
                    output,
                    {"artifact": artifact, "version": version},
                )
                return
    said(
        f"uploaded {artifact['uri']} ({artifact['size_bytes']} bytes, sha256 {artifact['sha256']})",
        output,
        artifact,
    )


def _ensure_model(client: MlplaneClient, model: str) -> None:
    """Create the model on its first version; one that exists already is fine."""
    try:
        client.call("POST", f"{REGISTRY}/models", json={"name": model})
    except MlplaneApiError as exc:
        if exc.status != 409:
            raise


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=quiet,
    )


def _sha256(file: Path, size: int, progress: Progress) -> str:
    task = progress.add_task("hashing", total=size)
    digest = hashlib.sha256()
    with file.open("rb") as source:
        while chunk := source.read(READ_SIZE):
            digest.update(chunk)
            progress.advance(task, len(chunk))
    progress.remove_task(task)
    return digest.hexdigest()


def _send_parts(
    client: MlplaneClient, file: Path, state: UploadState, parallel: int, progress: Progress
) -> None:
    """PUT every missing part, `parallel` at once, saving each ETag as it lands."""
    assert state.plan is not None
    part_size = int(state.plan["part_size"])
    task = progress.add_task("uploading", total=state.size_bytes, completed=state.done_bytes())
    saving = threading.Lock()

    def send(part: dict[str, Any]) -> None:
        number = int(part["number"])
        with file.open("rb") as source:
            source.seek((number - 1) * part_size)
            content = source.read(int(part["size_bytes"]))
        etag = client.put_bytes(part["url"], content)
        with saving:
            state.etags[number] = etag
            state.save()
        progress.advance(task, len(content))

    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="upload")
    futures: list[Future[None]] = [pool.submit(send, p) for p in state.missing_parts()]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
    except KeyboardInterrupt:
        _stop(pool, futures)
        parts = len(state.plan["parts"])
        typer.echo(
            f"interrupted: {len(state.etags)} of {parts} part(s) uploaded; "
            "run the same command again to resume",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BaseException:
        _stop(pool, futures)
        raise
    pool.shutdown(wait=True)
    progress.remove_task(task)


def _stop(pool: ThreadPoolExecutor, futures: list[Future[None]]) -> None:
    for future in futures:
        future.cancel()
    pool.shutdown(wait=True, cancel_futures=True)
