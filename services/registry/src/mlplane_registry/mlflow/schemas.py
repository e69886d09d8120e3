"""Request bodies of the MLflow-compatible API, as MLflow's REST API 2.0 names their fields.

Unknown fields are ignored (newer MLflow clients send more, e.g.
`deployment_job_id`); responses are plain dicts built by `mlflow_mapping`. Strings
holding a control character are refused (descriptions and tag values may hold tab,
LF and CR); tags follow MLflow's limits (`schemas.MAX_TAG_KEY`, `MAX_TAG_VALUE`,
at most `MAX_TAGS` per model or version); lists are bounded.
"""

from __future__ import annotations

from typing import ClassVar, Final

from mlplane_contracts.types import FreeText, PlainText
from pydantic import BaseModel, ConfigDict, Field

from mlplane_registry.schemas import MAX_DESCRIPTION, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS

MAX_NAME: Final = 256
MAX_ORDER_BY: Final = 10
MAX_STAGES: Final = 10


class MlflowRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Fields that repeat in a GET's query string (`order_by=a&order_by=b`).
    LIST_FIELDS: ClassVar[frozenset[str]] = frozenset()


class Tag(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: PlainText = Field(min_length=1, max_length=MAX_TAG_KEY)
    value: FreeText = Field(default="", max_length=MAX_TAG_VALUE)


class ModelName(MlflowRequest):
    name: PlainText = Field(min_length=1, max_length=MAX_NAME)


class CreateRegisteredModel(ModelName):
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    description: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION)


class RenameRegisteredModel(ModelName):
    new_name: PlainText = Field(min_length=1, max_length=MAX_NAME)


class UpdateRegisteredModel(ModelName):
    description: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION)


class Search(MlflowRequest):
    LIST_FIELDS = frozenset({"order_by"})

    filter: FreeText | None = Field(default=None, max_length=MAX_TAG_VALUE)
    max_results: int | None = Field(default=None, ge=1)
    order_by: list[PlainText] = Field(default_factory=list, max_length=MAX_ORDER_BY)
    page_token: PlainText | None = Field(default=None, max_length=1024)


class GetLatestVersions(ModelName):
    LIST_FIELDS = frozenset({"stages"})

    stages: list[PlainText] = Field(default_factory=list, max_length=MAX_STAGES)


class SetRegisteredModelTag(ModelName):
    key: PlainText = Field(min_length=1, max_length=MAX_TAG_KEY)
    value: FreeText = Field(default="", max_length=MAX_TAG_VALUE)


class DeleteRegisteredModelTag(ModelName):
    key: PlainText = Field(min_length=1, max_length=MAX_TAG_KEY)


class SetAlias(ModelName):
    alias: PlainText = Field(min_length=1, max_length=MAX_NAME)
    version: PlainText = Field(min_length=1, max_length=MAX_NAME)


class AliasRef(ModelName):
    alias: PlainText = Field(min_length=1, max_length=MAX_NAME)


class CreateModelVersion(ModelName):
    source: PlainText = Field(default="", max_length=2048)
    run_id: PlainText | None = Field(default=None, max_length=MAX_NAME)
    run_link: PlainText | None = Field(default=None, max_length=2048)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    description: FreeText | None = Field(default=None, max_length=MAX_TAG_VALUE)
    model_id: PlainText | None = Field(default=None, max_length=MAX_NAME)


class VersionRef(ModelName):
    version: PlainText = Field(min_length=1, max_length=MAX_NAME)


class UpdateModelVersion(VersionRef):
    description: FreeText | None = Field(default=None, max_length=MAX_TAG_VALUE)


class SetModelVersionTag(VersionRef):
    key: PlainText = Field(min_length=1, max_length=MAX_TAG_KEY)
    value: FreeText = Field(default="", max_length=MAX_TAG_VALUE)


class DeleteModelVersionTag(VersionRef):
    key: PlainText = Field(min_length=1, max_length=MAX_TAG_KEY)
