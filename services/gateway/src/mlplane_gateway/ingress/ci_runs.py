"""CI webhooks and the custom payload, turned into `ci.run.completed` facts.

The team is the owner of the webhook secret that signed the request (it is in
the webhook URL). The model and the artifact come from conventions, documented
in the README's Gateway section:

- GitHub `workflow_run` (completed): the model is `?model=` on the webhook URL,
  else the workflow file `.github/workflows/mlplane-<model>.yml`; other
  workflows are ignored. GitHub's payload names no artifact, so the fact has
  none (the registry records nothing from it); to register a version, publish a
  release or post the custom payload.
- GitHub `release` (published): the model is `?model=`, else the tag
  `<model>/<version>` or `<model>@<version>`; the artifact is the asset named
  `model.<ext>` with its `digest`; the commit is `target_commitish`, which must
  be the full commit SHA.
- GitLab pipeline events: the model is `?model=`, else the pipeline variable
  `MLPLANE_MODEL`; the artifact is in `MLPLANE_ARTIFACT_URI`,
  `MLPLANE_ARTIFACT_SHA256`, `MLPLANE_ARTIFACT_SIZE`, `MLPLANE_FRAMEWORK`
  (and optional `MLPLANE_ARTIFACT_MEDIA_TYPE`).
- The custom payload (`mlplane.run` as the event header): `CustomCiRun`, the
  fact itself minus team and provider.

Each function returns the fact, or an `Ignored` saying why nothing is emitted,
and raises `WebhookRefused` for a payload that matches a convention but cannot
make a valid fact (the message says what to change).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

from mlplane_contracts.events import (
    CiConclusion,
    CiProvider,
    CiRunCompleted,
    Lineage,
    ModelArtifact,
    ModelFramework,
)
from mlplane_contracts.types import DNS_LABEL_PATTERN, Name, Timestamp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlplane_gateway.errors import WebhookRefused

_M = TypeVar("_M", bound=BaseModel)

CUSTOM_EVENT = "mlplane.run"
"""`X-GitHub-Event` / `X-Gitlab-Event` value of the custom payload."""

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_WORKFLOW_FILE = re.compile(r"mlplane-(?P<model>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.ya?ml")
_RELEASE_TAG = re.compile(r"(?P<model>[a-z0-9]([-a-z0-9]*[a-z0-9])?)[/@].+")
_FRAMEWORK_BY_SUFFIX = {
    ".onnx": ModelFramework.ONNX,
    ".pkl": ModelFramework.SKLEARN,
    ".joblib": ModelFramework.SKLEARN,
    ".pt": ModelFramework.PYTORCH,
    ".pth": ModelFramework.PYTORCH,
    ".keras": ModelFramework.TENSORFLOW,
    ".h5": ModelFramework.TENSORFLOW,
    ".ubj": ModelFramework.XGBOOST,
    ".xgb": ModelFramework.XGBOOST,
    ".safetensors": ModelFramework.HUGGINGFACE,
}


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid, signed delivery that says nothing about a training run."""

    reason: str


@dataclass(frozen=True, slots=True)
class WebhookHints:
    """What the webhook URL adds: `?model=` and `?framework=`."""

    model: str | None = None
    framework: ModelFramework | None = None


# -- the custom payload ---------------------------------------------------------------


class CustomCiRun(BaseModel):
    """The documented custom payload: a `ci.run.completed` without team and provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    run_id: Name
    conclusion: CiConclusion
    completed_at: Timestamp
    artifact: ModelArtifact | None = None
    lineage: Lineage


def from_custom(team: str, provider: CiProvider, body: bytes) -> CiRunCompleted:
    """The fact in a custom payload. Raises WebhookRefused naming each invalid field."""
    run = _parse(CustomCiRun, body)
    return _fact(
        team=team,
        model=run.model,
        provider=provider,
        run_id=run.run_id,
        conclusion=run.conclusion,
        completed_at=run.completed_at,
        artifact=run.artifact,
        lineage=run.lineage,
    )


# -- GitHub ---------------------------------------------------------------------------


class _Loose(BaseModel):
    # Providers add fields all the time: read what we need, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _GithubRepository(_Loose):
    html_url: str


class _WorkflowRun(_Loose):
    id: int
    run_attempt: int = 1
    path: str = ""
    head_sha: str
    head_branch: str | None = None
    status: str
    conclusion: str | None = None
    html_url: str
    updated_at: datetime


class _WorkflowRunEvent(_Loose):
    action: str
    workflow_run: _WorkflowRun
    repository: _GithubRepository


class _ReleaseAsset(_Loose):
    name: str
    size: int
    browser_download_url: str
    content_type: str | None = None
    digest: str | None = None


class _Release(_Loose):
    id: int
    tag_name: str
    target_commitish: str
    html_url: str
    published_at: datetime | None = None
    assets: list[_ReleaseAsset] = Field(default_factory=list)


class _ReleaseEvent(_Loose):
    action: str
    release: _Release
    repository: _GithubRepository


_GITHUB_CONCLUSIONS = {
    "success": CiConclusion.SUCCEEDED,
    "cancelled": CiConclusion.CANCELLED,
    "skipped": None,
    "neutral": None,
}
"""Every other completed conclusion (failure, timed_out, startup_failure, ...) is a failure."""


def from_github_workflow_run(
    team: str, body: bytes, hints: WebhookHints
) -> CiRunCompleted | Ignored:
    """The fact of a completed GitHub Actions workflow run (no artifact: see module doc)."""
    event = _parse(_WorkflowRunEvent, body)
    run = event.workflow_run
    if event.action != "completed" or run.status != "completed":
        return Ignored(f"workflow run is {run.status}, not completed")
    model = hints.model or _model_of_workflow(run.path)
    if model is None:
        return Ignored(
            f"workflow {run.path or '(unnamed)'} is not an mlplane training workflow "
            "(name it .github/workflows/mlplane-<model>.yml or add ?model= to the webhook URL)"
        )
    conclusion = _GITHUB_CONCLUSIONS.get(run.conclusion or "", CiConclusion.FAILED)
    if conclusion is None:
        return Ignored(f"workflow run concluded {run.conclusion}: nothing ran")
    return _fact(
        team=team,
        model=model,
        provider=CiProvider.GITHUB_ACTIONS,
        # A re-run is a new completion of the same run id: the attempt tells them apart.
        run_id=f"{run.id}.{run.run_attempt}",
        conclusion=conclusion,
        completed_at=run.updated_at,
        artifact=None,
        lineage={
            "git_repository": event.repository.html_url,
            "commit_sha": run.head_sha,
            "git_ref": run.head_branch,
            "ci_run_url": run.html_url,
        },
    )


def from_github_release(team: str, body: bytes, hints: WebhookHints) -> CiRunCompleted | Ignored:
    """The fact of a published GitHub release carrying a `model.<ext>` asset."""
    event = _parse(_ReleaseEvent, body)
    release = event.release
    if event.action != "published":
        return Ignored(f"release {event.action}, not published")
    model = hints.model or _model_of_tag(release.tag_name)
    if model is None:
        return Ignored(
            f"tag {release.tag_name!r} names no model "
            "(tag it <model>/<version> or add ?model= to the webhook URL)"
        )
    if _FULL_SHA.fullmatch(release.target_commitish) is None:
        raise WebhookRefused(
            f"release {release.tag_name}: target_commitish {release.target_commitish!r} is "
            "not a full commit SHA; create the release with --target <commit sha>"
        )
    asset = next((a for a in release.assets if a.name.startswith("model.")), None)
    if asset is None:
        raise WebhookRefused(f"release {release.tag_name} has no model.<ext> asset")
    if asset.digest is None or not asset.digest.startswith("sha256:"):
        raise WebhookRefused(f"asset {asset.name} has no sha256 digest")
    framework = hints.framework or _FRAMEWORK_BY_SUFFIX.get(
        PurePosixPath(asset.name).suffix.lower(), ModelFramework.CUSTOM
    )
    artifact = {
        "uri": asset.browser_download_url,
        "sha256": asset.digest.removeprefix("sha256:"),
        "size_bytes": asset.size,
        "framework": framework,
        "media_type": asset.content_type,
    }
    return _fact(
        team=team,
        model=model,
        provider=CiProvider.GITHUB_ACTIONS,
        run_id=f"release-{release.id}",
        conclusion=CiConclusion.SUCCEEDED,
        completed_at=release.published_at,
        artifact=artifact,
        lineage={
            "git_repository": event.repository.html_url,
            "commit_sha": release.target_commitish,
            "git_ref": release.tag_name,
            "ci_run_url": release.html_url,
        },
    )


def _model_of_workflow(path: str) -> str | None:
    match = _WORKFLOW_FILE.fullmatch(PurePosixPath(path).name)
    return match.group("model") if match else None


def _model_of_tag(tag: str) -> str | None:
    match = _RELEASE_TAG.fullmatch(tag)
    return match.group("model") if match else None


# -- GitLab ---------------------------------------------------------------------------


class _GitlabVariable(_Loose):
    key: str
    value: str


class _Pipeline(_Loose):
    id: int
    ref: str | None = None
    sha: str
    status: str
    finished_at: datetime | None = None
    url: str | None = None
    variables: list[_GitlabVariable] = Field(default_factory=list)

    @field_validator("finished_at", mode="before")
    @classmethod
    def _gitlab_time(cls, value: Any) -> Any:
        # GitLab writes "2016-08-12 16:23:02 UTC" in webhooks, not RFC 3339.
        if isinstance(value, str) and value.endswith(" UTC"):
            return value.removesuffix(" UTC").replace(" ", "T") + "Z"
        return value


class _GitlabProject(_Loose):
    web_url: str


class _PipelineEvent(_Loose):
    object_kind: str
    object_attributes: _Pipeline
    project: _GitlabProject


_GITLAB_CONCLUSIONS = {
    "success": CiConclusion.SUCCEEDED,
    "failed": CiConclusion.FAILED,
    "canceled": CiConclusion.CANCELLED,
}


def from_gitlab_pipeline(
    team: str, body: bytes, hints: WebhookHints, received_at: datetime
) -> CiRunCompleted | Ignored:
    """The fact of a finished GitLab pipeline; running or skipped ones are ignored."""
    event = _parse(_PipelineEvent, body)
    if event.object_kind != "pipeline":
        return Ignored(f"object_kind {event.object_kind!r} is not a pipeline")
    pipeline = event.object_attributes
    conclusion = _GITLAB_CONCLUSIONS.get(pipeline.status)
    if conclusion is None:
        return Ignored(f"pipeline is {pipeline.status}, not finished")
    variables = {variable.key: variable.value for variable in pipeline.variables}
    model = hints.model or variables.get("MLPLANE_MODEL")
    if model is None:
        return Ignored("no model: set MLPLANE_MODEL or add ?model= to the webhook URL")
    return _fact(
        team=team,
        model=model,
        provider=CiProvider.GITLAB_CI,
        run_id=str(pipeline.id),
        conclusion=conclusion,
        completed_at=pipeline.finished_at or received_at,
        artifact=_gitlab_artifact(variables, hints),
        lineage={
            "git_repository": event.project.web_url,
            "commit_sha": pipeline.sha,
            "git_ref": pipeline.ref,
            "ci_run_url": pipeline.url or f"{event.project.web_url}/-/pipelines/{pipeline.id}",
        },
    )


def _gitlab_artifact(variables: dict[str, str], hints: WebhookHints) -> dict[str, Any] | None:
    uri = variables.get("MLPLANE_ARTIFACT_URI")
    if uri is None:
        return None
    missing = [
        name
        for name in ("MLPLANE_ARTIFACT_SHA256", "MLPLANE_ARTIFACT_SIZE")
        if name not in variables
    ]
    if hints.framework is None and "MLPLANE_FRAMEWORK" not in variables:
        missing.append("MLPLANE_FRAMEWORK")
    if missing:
        raise WebhookRefused(
            f"MLPLANE_ARTIFACT_URI is set but {', '.join(missing)} are not",
            missing=missing,
        )
    return {
        "uri": uri,
        "sha256": variables["MLPLANE_ARTIFACT_SHA256"],
        "size_bytes": variables["MLPLANE_ARTIFACT_SIZE"],
        "framework": hints.framework or variables["MLPLANE_FRAMEWORK"],
        "media_type": variables.get("MLPLANE_ARTIFACT_MEDIA_TYPE"),
    }


# -- shared ---------------------------------------------------------------------------


def _parse(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _refused(exc, "payload") from exc


def _fact(**fields: Any) -> CiRunCompleted:
    if not isinstance(fields["model"], str) or _DNS_LABEL.fullmatch(fields["model"]) is None:
        raise WebhookRefused(f"model {fields['model']!r} is not a DNS-1123 label")
    try:
        return CiRunCompleted.model_validate(fields)
    except ValidationError as exc:
        raise _refused(exc, "ci.run.completed") from exc


def _refused(exc: ValidationError, what: str) -> WebhookRefused:
    errors = [
        {"field": ".".join(str(p) for p in error["loc"]) or what, "message": error["msg"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return WebhookRefused(f"the {what} is not valid: {fields}", errors=errors)
