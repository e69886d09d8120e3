"""MLflow's model-registry JSON ↔ the registry's domain: pure functions, no I/O.

MLflow's registry and mlplane's do not hold quite the same things, so the MLflow
API maps them as follows:

- a registered model is a model of the caller's team; its name must be a DNS-1123
  label (MLflow accepts any string, mlplane refuses others with
  INVALID_PARAMETER_VALUE);
- a version's `source` is its artifact URI (an absolute URI, `s3://...`), its
  `run_link` the CI run URL of its lineage, its `user_id` who registered it;
- what mlplane requires and MLflow does not carry (the artifact's sha256 and size,
  the git repository and commit) comes in as version tags with the `mlplane.`
  prefix (`INPUT_TAGS`); they fill the artifact and lineage, and are not stored as
  tags;
- what MLflow carries and mlplane has no field for (a version's `description` and
  `run_id`) is kept in the version's tags under `mlplane.mlflow.`, hidden from the
  MLflow tags;
- stages are deprecated in MLflow: every version is in stage `None`, status `READY`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mlplane_contracts.events import ModelFramework
from mlplane_contracts.types import (
    GIT_COMMIT_PATTERN,
    METRIC_KEY_PATTERN,
    RESOURCE_URI_PATTERN,
    SHA256_HEX_PATTERN,
    WEB_URL_PATTERN,
)
from mlplane_runtime.errors import (
    Conflict,
    InvalidInput,
    MlplaneError,
    NotFound,
    PreconditionFailed,
    Unavailable,
)

from mlplane_registry.domain import (
    DNS_LABEL,
    MAX_DNS_LABEL,
    Artifact,
    InvalidTransition,
    Lineage,
    Model,
    ModelAlreadyExists,
    ModelVersion,
)
from mlplane_registry.schemas import MAX_TAG_VALUE, MAX_TAGS

# -- errors -----------------------------------------------------------------------------

RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
INVALID_STATE = "INVALID_STATE"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"

# As MLflow's server answers them (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS).
HTTP_STATUS = {
    RESOURCE_DOES_NOT_EXIST: 404,
    RESOURCE_ALREADY_EXISTS: 400,
    INVALID_PARAMETER_VALUE: 400,
    INVALID_STATE: 500,
    RESOURCE_CONFLICT: 409,
    ENDPOINT_NOT_FOUND: 404,
    NOT_IMPLEMENTED: 501,
    TEMPORARILY_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
}


class MlflowError(Exception):
    """An error in MLflow's shape: `{"error_code": ..., "message": ...}` and its status."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.error_code, 500)

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def error_of(exc: MlplaneError) -> MlflowError:
    """The MLflow error a domain error is, keeping its message."""
    if isinstance(exc, NotFound):
        code = RESOURCE_DOES_NOT_EXIST
    elif isinstance(exc, ModelAlreadyExists):
        code = RESOURCE_ALREADY_EXISTS
    elif isinstance(exc, InvalidInput):
        code = INVALID_PARAMETER_VALUE
    elif isinstance(exc, InvalidTransition):
        code = INVALID_STATE
    elif isinstance(exc, Conflict | PreconditionFailed):
        code = RESOURCE_CONFLICT
    elif isinstance(exc, Unavailable):
        code = TEMPORARILY_UNAVAILABLE
    elif exc.status == HTTP_STATUS[UNAUTHENTICATED]:
        code = UNAUTHENTICATED
    elif exc.status == HTTP_STATUS[PERMISSION_DENIED]:
        code = PERMISSION_DENIED
    else:
        code = INTERNAL_ERROR
    return MlflowError(code, exc.detail)


def validation_message(errors: Iterable[Mapping[str, Any]]) -> str:
    """One message from pydantic's errors, each naming its parameter as MLflow does."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        if error.get("type") == "missing":
            parts.append(f"Missing value for required parameter '{where}'.")
        else:
            parts.append(f"Invalid value for parameter '{where}': {error.get('msg', 'invalid')}.")
    return " ".join(parts) or "Invalid request."


# -- names and numbers ------------------------------------------------------------------


def check_model_name(name: str) -> str:
    """`name` when mlplane accepts it as a model name; else INVALID_PARAMETER_VALUE."""
    if not name:
        raise invalid("Registered model name cannot be empty.")
    if len(name) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(name) is None:
        suggestion = suggest_name(name)
        hint = f" (e.g. '{suggestion}')" if suggestion else ""
        raise invalid(
            f"Registered model name '{name}' is not accepted by mlplane: model names are "
            "DNS-1123 labels (lowercase letters, digits and '-', at most 63 characters, "
            f"starting and ending with a letter or digit){hint}."
        )
    return name


def check_alias(alias: str) -> str:
    if len(alias) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(alias) is None:
        raise invalid(
            f"Alias '{alias}' is not accepted by mlplane: aliases are DNS-1123 labels "
            "(lowercase letters, digits and '-', at most 63 characters)."
        )
    return alias


def suggest_name(name: str) -> str:
    """A DNS-1123 label close to `name` ('' when none is): lowercased, runs of others → '-'."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return label[:MAX_DNS_LABEL].rstrip("-")


def parse_version(version: str) -> int:
    """MLflow's version string as a number; INVALID_PARAMETER_VALUE when it is none."""
    text = version.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1 or int(text) > 2**31 - 1:
        raise invalid(f"Model version must be a positive integer, got '{version}'.")
    return int(text)


def timestamp_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- tags -------------------------------------------------------------------------------

RESERVED_PREFIX = "mlplane."
HIDDEN_PREFIX = "mlplane.mlflow."
DESCRIPTION_TAG = "mlplane.mlflow.description"
RUN_ID_TAG = "mlplane.mlflow.run_id"

SHA256_TAG = "mlplane.sha256"
SIZE_TAG = "mlplane.size_bytes"
FRAMEWORK_TAG = "mlplane.framework"
MEDIA_TYPE_TAG = "mlplane.media_type"
GIT_REPOSITORY_TAG = "mlplane.git_repository"
COMMIT_TAG = "mlplane.commit_sha"
GIT_REF_TAG = "mlplane.git_ref"
CI_RUN_URL_TAG = "mlplane.ci_run_url"
INPUT_TAGS = frozenset(
    {
        SHA256_TAG,
        SIZE_TAG,
        FRAMEWORK_TAG,
        MEDIA_TYPE_TAG,
        GIT_REPOSITORY_TAG,
        COMMIT_TAG,
        GIT_REF_TAG,
        CI_RUN_URL_TAG,
    }
)
# MLflow marks prompts (kept in its model registry) with this tag; mlplane holds models only.
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
_TAG_KEY = re.compile(METRIC_KEY_PATTERN.strip("^$"))


def check_tag(key: str, value: str) -> tuple[str, str]:
    """A user tag mlplane can store (and announce in events); else INVALID_PARAMETER_VALUE."""
    if len(key) > 250 or _TAG_KEY.fullmatch(key) is None:
        raise invalid(
            f"Tag key '{key}' is not accepted by mlplane: keys are letters, digits and "
            "'_', '.', ':', '/', '-' (at most 250, not starting with a punctuation mark)."
        )
    if key.startswith(RESERVED_PREFIX):
        raise invalid(
            f"Tag key '{key}' is reserved: keys starting with '{RESERVED_PREFIX}' are mlplane's."
        )
    if key == IS_PROMPT_TAG:
        raise invalid("mlplane's registry holds models, not MLflow prompts.")
    if len(value) > MAX_TAG_VALUE:
        raise invalid(f"Tag '{key}' has a value longer than {MAX_TAG_VALUE} characters.")
    return key, value


def tags_json(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """The tags an MLflow client sees: all but mlplane's hidden ones, sorted by key."""
    return [
        {"key": key, "value": value}
        for key, value in sorted(tags.items())
        if not key.startswith(HIDDEN_PREFIX)
    ]


def with_tag(tags: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """`tags` with `key` set; INVALID_PARAMETER_VALUE when that makes more than `MAX_TAGS`
    user tags (mlplane's own `mlflow.`/`mlplane.` tags are not counted)."""
    result = {**tags, key: value}
    if key not in tags and sum(not k.startswith(RESERVED_PREFIX) for k in result) > MAX_TAGS:
        raise invalid(f"A model or version carries at most {MAX_TAGS} tags.")
    return result


def without_tag(tags: Mapping[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k != key}


def check_tag_key_deletable(key: str) -> str:
    """A tag key an MLflow client may delete: not one of mlplane's."""
    if key.startswith(RESERVED_PREFIX):
        raise invalid(
            f"Tag key '{key}' is reserved: keys starting with '{RESERVED_PREFIX}' are mlplane's."
        )
    return key


def with_description(tags: Mapping[str, str], description: str | None) -> dict[str, str]:
    """A version's tags with its MLflow description set (removed when empty)."""
    if description and len(description) > MAX_TAG_VALUE:
        raise invalid(f"description is longer than {MAX_TAG_VALUE} characters.")
    if not description:
        return without_tag(tags, DESCRIPTION_TAG)
    return with_tag(tags, DESCRIPTION_TAG, description)


# -- entities → JSON --------------------------------------------------------------------


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """A version as MLflow's `ModelVersion` message."""
    return {
        "name": version.model,
        "version": str(version.version),
        "creation_timestamp": timestamp_ms(version.created_at),
        "last_updated_timestamp": timestamp_ms(version.updated_at),
        "user_id": version.registered_by,
        "current_stage": "None",
        "description": version.tags.get(DESCRIPTION_TAG, ""),
        "source": version.artifact.uri,
        "run_id": version.tags.get(RUN_ID_TAG, ""),
        "run_link": version.lineage.ci_run_url,
        "status": "READY",
        "status_message": version.status_message or "",
        "tags": tags_json(version.tags),
        "aliases": sorted(version.aliases),
    }


def registered_model_json(
    model: Model, versions: Iterable[ModelVersion] | None = None
) -> dict[str, Any]:
    """A model as MLflow's `RegisteredModel` message.

    With `versions` (all of the model's), it carries its aliases and latest version
    too, as MLflow's `get` does; without, as `search` here does, it does not.
    """
    body: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": timestamp_ms(model.created_at),
        "last_updated_timestamp": timestamp_ms(model.updated_at),
        "description": model.description,
        "tags": tags_json(model.tags),
    }
    if versions is not None:
        every = list(versions)
        body["aliases"] = [
            {"alias": alias, "version": str(v.version)}
            for v in every
            for alias in sorted(v.aliases)
        ]
        latest = latest_version(every)
        body["latest_versions"] = [] if latest is None else [model_version_json(latest)]
    return body


def latest_version(versions: Iterable[ModelVersion]) -> ModelVersion | None:
    return max(versions, key=lambda v: v.version, default=None)


NONE_STAGE = "none"
KNOWN_STAGES = frozenset({"none", "staging", "production", "archived"})


def latest_for_stages(stages: Iterable[str], latest: ModelVersion | None) -> list[ModelVersion]:
    """`get-latest-versions`: every version is in stage None, so only that stage has one."""
    wanted = {s.lower() for s in stages}
    unknown = sorted(wanted - KNOWN_STAGES)
    if unknown:
        raise invalid(
            f"Invalid Model Version stage: {', '.join(unknown)}. "
            "Value must be one of None, Staging, Production, Archived."
        )
    if latest is None or (wanted and NONE_STAGE not in wanted):
        return []
    return [latest]


# -- a new version ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What `model-versions/create` asks for, in the domain's terms."""

    framework: str
    artifact: Artifact
    lineage: Lineage
    tags: dict[str, str]


def new_version(
    *,
    source: str,
    run_id: str | None,
    run_link: str | None,
    description: str | None,
    tags: Iterable[tuple[str, str]],
) -> NewVersion:
    """The version MLflow's create request describes; INVALID_PARAMETER_VALUE naming
    every missing or malformed field, with how to pass it.
    """
    given: dict[str, str] = {}
    stored: dict[str, str] = {}
    problems: list[str] = []
    for key, value in tags:
        if key in INPUT_TAGS:
            given[key] = value
            continue
        try:
            check_tag(key, value)
        except MlflowError as exc:
            problems.append(exc.message)
            continue
        stored[key] = value

    if not source:
        problems.append("Missing value for required parameter 'source'.")
    elif re.fullmatch(RESOURCE_URI_PATTERN.strip("^$"), source) is None or len(source) > 2048:
        problems.append(
            f"source '{source}' is not an absolute URI of the stored model (e.g. "
            "s3://bucket/models/fraud/7/model.onnx): mlplane has no tracking server to "
            "resolve runs:/ or models:/ URIs or local paths."
        )

    def required(key: str, pattern: str, what: str, fallback: str | None = None) -> str:
        value = given.get(key) or fallback
        if not value:
            problems.append(f"Missing tag '{key}': {what}.")
            return ""
        if re.fullmatch(pattern.strip("^$"), value) is None:
            problems.append(f"Tag '{key}' = '{value}' is not {what}.")
        return value

    sha256 = required(SHA256_TAG, SHA256_HEX_PATTERN, "the artifact's sha256 (64 lowercase hex)")
    size = required(SIZE_TAG, r"[0-9]{1,18}", "the artifact's size in bytes")
    repository = required(GIT_REPOSITORY_TAG, WEB_URL_PATTERN, "the git repository's https URL")
    commit = required(COMMIT_TAG, GIT_COMMIT_PATTERN, "the full git commit sha (40 or 64 hex)")
    ci_run_url = required(
        CI_RUN_URL_TAG,
        WEB_URL_PATTERN,
        "the CI run's https URL (or pass run_link)",
        fallback=run_link or None,
    )
    framework = given.get(FRAMEWORK_TAG, ModelFramework.CUSTOM.value)
    if framework not in {f.value for f in ModelFramework}:
        problems.append(
            f"Tag '{FRAMEWORK_TAG}' = '{framework}' is not one of "
            f"{', '.join(f.value for f in ModelFramework)}."
        )
    media_type = given.get(MEDIA_TYPE_TAG) or None
    if description and len(description) > MAX_TAG_VALUE:
        problems.append(f"description is longer than {MAX_TAG_VALUE} characters.")
    if run_id and len(run_id) > 256:
        problems.append("run_id is longer than 256 characters.")
    if problems:
        raise invalid(
            "Cannot register this model version in mlplane: "
            + " ".join(problems)
            + " mlplane records each version's verified artifact and lineage; pass them as "
            f"version tags ({', '.join(sorted(INPUT_TAGS))})."
        )
    if description:
        stored[DESCRIPTION_TAG] = description
    if run_id:
        stored[RUN_ID_TAG] = run_id
    return NewVersion(
        framework=framework,
        artifact=Artifact(source, int(size), sha256, media_type),
        lineage=Lineage(
            git_repository=repository,
            commit_sha=commit,
            ci_run_url=ci_run_url,
            git_ref=given.get(GIT_REF_TAG) or None,
        ),
        tags=stored,
    )


# -- search -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """An MLflow filter string, as far as mlplane can search by it."""

    name: str | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    prompts_only: bool = False
    """Asks for MLflow prompts only: there are none (mlplane does not store prompts)."""

    SUPPORTED: ClassVar[str] = (
        "name = '<name>', name LIKE '<prefix>%', run_id = '<id>' (versions only) and "
        "tags.<key> = '<value>' (versions only), joined by AND"
    )


_CLAUSE = re.compile(
    r"""\s*(?P<field>name|run_id|tags?\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.:/-]+))"""
    r"""\s*(?P<op>=|==|!=|LIKE|ILIKE)\s*(?P<value>'[^']*'|"[^"]*")\s*""",
    re.IGNORECASE,
)
_AND = re.compile(r"AND\b", re.IGNORECASE)


def parse_filter(text: str | None, *, versions: bool) -> SearchFilter:
    """The filter of a `search` request; INVALID_PARAMETER_VALUE for what mlplane cannot do."""
    if text is None or not text.strip():
        return SearchFilter()
    name: str | None = None
    prefix: str | None = None
    tags: list[tuple[str, str]] = []
    prompts_only = False
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise _unsupported(text)
        field = match["field"]
        op = match["op"].upper()
        value = match["value"][1:-1]
        lowered = field.lower()
        if lowered == "name" and op in ("=", "=="):
            name = value
        elif lowered == "name" and op in ("LIKE", "ILIKE"):
            if not value.endswith("%") or any(c in value[:-1] for c in "%_"):
                raise _unsupported(text)
            prefix = value[:-1].lower() if op == "ILIKE" else value[:-1]
        elif versions and lowered == "run_id" and op in ("=", "=="):
            tags.append((RUN_ID_TAG, value))
        elif lowered.startswith("tag"):
            key = field.partition(".")[2].strip('`"')
            if key == IS_PROMPT_TAG and value == "true" and op == "!=":
                pass  # the MLflow client excludes prompts: mlplane holds none
            elif key == IS_PROMPT_TAG and value == "true" and op in ("=", "=="):
                prompts_only = True
            elif versions and op in ("=", "=="):
                tags.append((key, value))
            else:
                raise _unsupported(text)
        else:
            raise _unsupported(text)
        position = match.end()
        if position == len(text):
            break
        conjunction = _AND.match(text, position)
        if conjunction is None:
            raise _unsupported(text)
        position = conjunction.end()
    return SearchFilter(name=name, name_prefix=prefix, tags=tuple(tags), prompts_only=prompts_only)


def _unsupported(text: str) -> MlflowError:
    return invalid(f"Unsupported filter '{text}': mlplane supports {SearchFilter.SUPPORTED}.")


def check_order_by(order_by: Iterable[str]) -> None:
    """mlplane returns search results in its own stable order and sorts by nothing else."""
    given = [o for o in order_by if o.strip()]
    if given:
        raise invalid(
            f"Unsupported order_by {given}: mlplane returns models by name and versions "
            "in registration order."
        )


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_offset(token: str | None) -> int:
    """The offset a page token of `registered-models/search` stands for."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid(f"Invalid page_token '{token}'.") from None
    if offset < 0:
        raise invalid(f"Invalid page_token '{token}'.")
    return offset
