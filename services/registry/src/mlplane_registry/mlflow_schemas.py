"""Request bodies of the MLflow-compatible API, as MLflow's REST API 2.0 names their fields.

Unknown fields are ignored (newer MLflow clients send more, e.g.
`deployment_job_id`); responses are plain dicts built by `mlflow_mapping`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class MlflowRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Fields that repeat in a GET's query string (`order_by=a&order_by=b`).
    LIST_FIELDS: ClassVar[frozenset[str]] = frozenset()


class Tag(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(min_length=1, max_length=250)
    value: str = ""


class ModelName(MlflowRequest):
    name: str = Field(min_length=1)


class CreateRegisteredModel(ModelName):
    tags: list[Tag] = Field(default_factory=list)
    description: str | None = Field(default=None, max_length=4096)


class RenameRegisteredModel(ModelName):
    new_name: str = Field(min_length=1)


class UpdateRegisteredModel(ModelName):
    description: str | None = Field(default=None, max_length=4096)


class Search(MlflowRequest):
    LIST_FIELDS = frozenset({"order_by"})

    filter: str | None = None
    max_results: int | None = Field(default=None, ge=1)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class GetLatestVersions(ModelName):
    LIST_FIELDS = frozenset({"stages"})

    stages: list[str] = Field(default_factory=list)


class SetRegisteredModelTag(ModelName):
    key: str = Field(min_length=1)
    value: str = ""


class DeleteRegisteredModelTag(ModelName):
    key: str = Field(min_length=1)


class SetAlias(ModelName):
    alias: str = Field(min_length=1)
    version: str = Field(min_length=1)


class AliasRef(ModelName):
    alias: str = Field(min_length=1)


class CreateModelVersion(ModelName):
    source: str = ""
    run_id: str | None = None
    run_link: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    description: str | None = None


class VersionRef(ModelName):
    version: str = Field(min_length=1)


class UpdateModelVersion(VersionRef):
    description: str | None = None


class SetModelVersionTag(VersionRef):
    key: str = Field(min_length=1)
    value: str = ""


class DeleteModelVersionTag(VersionRef):
    key: str = Field(min_length=1)
