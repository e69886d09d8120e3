"""`mlplane login` and `mlplane profiles ...`: which platform, with which key."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplane_sdk.cli.failure import EXIT_UNAUTHORIZED, EXIT_UNREACHABLE, fail
from mlplane_sdk.cli.profiles import DEFAULT_PROFILE, ProfileError, Profiles
from mlplane_sdk.cli.session import Output, OutputOption, emit, said
from mlplane_sdk.client import (
    DEFAULT_URL,
    MlplaneApiError,
    MlplaneClient,
    MlplaneClientError,
    MlplaneUnreachable,
)

profiles_app = typer.Typer(help="Saved platforms and keys.", no_args_is_help=True)


def login(
    url: Annotated[str, typer.Option(help="The platform's gateway.")] = DEFAULT_URL,
    profile: Annotated[str, typer.Option(help="Save it under this name.")] = DEFAULT_PROFILE,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="MLPLANE_API_KEY",
            help="The key (asked for, unechoed, when not given).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check an API key against a platform and save both as a profile (made current)."""
    key = api_key or typer.prompt("API key", hide_input=True)
    try:
        with MlplaneClient(url, api_key=key) as client:
            client.call("GET", "/v1/registry/models", params={"limit": 1})
        note = ""
    except MlplaneUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except MlplaneApiError as exc:
        if exc.status == 401:
            fail(f"the platform refused the key: {exc}", EXIT_UNAUTHORIZED)
        # A key without models:read (a CI key, say) is still a key.
        note = f" (note: {exc})"
    except MlplaneClientError as exc:
        fail(str(exc))
    try:
        profiles = Profiles.load()
        profiles.profiles[profile] = {"url": url.rstrip("/"), "api_key": key}
        profiles.current = profile
        path = profiles.save()
    except (ProfileError, OSError) as exc:
        fail(f"cannot save the profile: {exc}")
    typer.echo(f"signed in to {url} as profile {profile!r}, saved in {path}{note}")


@profiles_app.command("list")
def list_profiles(output: OutputOption = Output.TABLE) -> None:
    """The saved profiles (keys are not shown)."""
    try:
        profiles = Profiles.load()
    except ProfileError as exc:
        fail(str(exc))
    shown = {
        "current": profiles.current,
        "profiles": [
            {"name": name, "url": p.get("url"), "has_key": bool(p.get("api_key"))}
            for name, p in sorted(profiles.profiles.items())
        ],
    }
    emit(
        shown,
        output,
        columns=("", "NAME", "URL", "KEY"),
        rows=lambda s: [
            (
                "*" if p["name"] == s["current"] else "",
                p["name"],
                p["url"],
                "yes" if p["has_key"] else "no",
            )
            for p in s["profiles"]
        ],
        empty="no profiles: run `mlplane login`",
    )


@profiles_app.command("use")
def use_profile(
    name: Annotated[str, typer.Argument(help="The profile.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """Make a saved profile the current one."""
    try:
        profiles = Profiles.load()
        if name not in profiles.profiles:
            known = ", ".join(sorted(profiles.profiles)) or "none"
            fail(f"no profile named {name!r} (profiles: {known})")
        profiles.current = name
        profiles.save()
    except (ProfileError, OSError) as exc:
        fail(str(exc))
    said(f"now using profile {name!r}", output, {"current": name})


@profiles_app.command("delete")
def delete_profile(
    name: Annotated[str, typer.Argument(help="The profile.")],
    output: OutputOption = Output.TABLE,
) -> None:
    """Forget a saved profile and its key."""
    try:
        profiles = Profiles.load()
        if profiles.profiles.pop(name, None) is None:
            fail(f"no profile named {name!r}")
        if profiles.current == name:
            profiles.current = None
        profiles.save()
    except (ProfileError, OSError) as exc:
        fail(str(exc))
    said(f"deleted profile {name!r}", output, {"deleted": name})
