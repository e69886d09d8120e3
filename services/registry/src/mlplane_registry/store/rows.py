"""Rows to domain entities and back (JSONB documents of artifacts and lineage)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy import Row

from mlplane_registry.domain import (
    Artifact,
    DatasetRef,
    Lifecycle,
    Lineage,
    Model,
    ModelVersion,
)


def new_etag() -> str:
    """A fresh entity tag: random, so a deleted and re-created resource never reuses one."""
    return uuid4().hex


def model_from_row(row: Row[Any]) -> Model:
    return Model(
        id=row.id,
        team=row.team,
        name=row.name,
        description=row.description,
        tags=dict(row.tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
        etag=row.etag,
    )


def version_from_row(row: Row[Any], aliases: tuple[str, ...]) -> ModelVersion:
    artifact = row.artifact
    lineage = row.lineage
    return ModelVersion(
        id=row.id,
        model_id=row.model_id,
        team=row.team,
        model=row.model,
        version=row.version,
        framework=row.framework,
        artifact=Artifact(
            artifact["uri"], artifact["size_bytes"], artifact["sha256"], artifact.get("media_type")
        ),
        lineage=Lineage(
            git_repository=lineage["git_repository"],
            commit_sha=lineage["commit_sha"],
            ci_run_url=lineage["ci_run_url"],
            git_ref=lineage.get("git_ref"),
            datasets=tuple(DatasetRef(**d) for d in lineage.get("datasets", ())),
            params=dict(lineage.get("params", {})),
            metrics=dict(lineage.get("metrics", {})),
        ),
        signature=row.signature,
        tags=dict(row.tags),
        status_message=row.status_message,
        lifecycle=Lifecycle.from_json(row.lifecycle),
        aliases=aliases,
        registered_by=row.registered_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        etag=row.etag,
        registration=row.registration,
    )


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "uri": artifact.uri,
        "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256,
        "media_type": artifact.media_type,
    }


def lineage_json(lineage: Lineage) -> dict[str, Any]:
    return {
        "git_repository": lineage.git_repository,
        "commit_sha": lineage.commit_sha,
        "ci_run_url": lineage.ci_run_url,
        "git_ref": lineage.git_ref,
        "datasets": [{"name": d.name, "uri": d.uri, "digest": d.digest} for d in lineage.datasets],
        "params": dict(lineage.params),
        "metrics": dict(lineage.metrics),
    }
