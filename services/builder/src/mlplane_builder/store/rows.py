"""Build records to and from rows: the request and layers are kept as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from mlplane_builder.domain import Build, BuildRequest, BuildStatus, BuiltLayerInfo


def request_json(request: BuildRequest) -> dict[str, Any]:
    return {
        "team": request.team,
        "model": request.model,
        "version": request.version,
        "framework": request.framework,
        "artifact_uri": request.artifact_uri,
        "artifact_sha256": request.artifact_sha256,
        "artifact_size": request.artifact_size,
        "artifact_media_type": request.artifact_media_type,
        "git_repository": request.git_repository,
        "commit_sha": request.commit_sha,
        "ci_run_url": request.ci_run_url,
        "registered_at": request.registered_at.isoformat(),
    }


def request_from_json(data: dict[str, Any]) -> BuildRequest:
    return BuildRequest(
        team=data["team"],
        model=data["model"],
        version=int(data["version"]),
        framework=data["framework"],
        artifact_uri=data["artifact_uri"],
        artifact_sha256=data["artifact_sha256"],
        artifact_size=int(data["artifact_size"]),
        artifact_media_type=data.get("artifact_media_type"),
        git_repository=data["git_repository"],
        commit_sha=data["commit_sha"],
        ci_run_url=data["ci_run_url"],
        registered_at=datetime.fromisoformat(data["registered_at"]),
    )


def layers_json(layers: tuple[BuiltLayerInfo, ...]) -> list[dict[str, Any]]:
    return [
        {"digest": layer.digest, "size": layer.size, "media_type": layer.media_type}
        for layer in layers
    ]


def build_from_row(row: Row[Any]) -> Build:
    m = row._mapping
    return Build(
        id=m["id"],
        request=request_from_json(m["request"]),
        status=BuildStatus(m["status"]),
        attempts=m["attempts"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        not_before=m["not_before"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        base_image=m["base_image"],
        image_repository=m["image_repository"],
        image_digest=m["image_digest"],
        image_tag=m["image_tag"],
        layers=tuple(
            BuiltLayerInfo(item["digest"], int(item["size"]), item["media_type"])
            for item in m["layers"]
        ),
        bytes_uploaded=m["bytes_uploaded"],
        image_size=m["image_size"],
        reused=m["reused"],
        error=m["error"],
        error_kind=m["error_kind"],
        retryable=m["retryable"],
        note=m["note"],
        traceparent=m["traceparent"],
        tracestate=m["tracestate"],
    )


def mutable_columns(build: Build) -> dict[str, Any]:
    """The columns a build's life changes (everything but its identity and request)."""
    return {
        "status": build.status.value,
        "attempts": build.attempts,
        "not_before": build.not_before,
        "lease_owner": build.lease_owner,
        "lease_expires_at": build.lease_expires_at,
        "base_image": build.base_image,
        "image_repository": build.image_repository,
        "image_digest": build.image_digest,
        "image_tag": build.image_tag,
        "layers": layers_json(build.layers),
        "bytes_uploaded": build.bytes_uploaded,
        "image_size": build.image_size,
        "reused": build.reused,
        "error": build.error,
        "error_kind": build.error_kind,
        "retryable": build.retryable,
        "note": build.note,
        "updated_at": build.updated_at,
        "started_at": build.started_at,
        "finished_at": build.finished_at,
        "traceparent": build.traceparent,
        "tracestate": build.tracestate,
    }
