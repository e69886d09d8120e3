"""Synthetic data and events for the drift service's tests: a reference of two numeric
features and one categorical, windows drawn from the same distributions or shifted."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CATEGORIES = ["x", "y", "z"]


def table(
    rows: int, seed: int, *, shift: float = 0.0, categories: list[str] | None = None
) -> pa.Table:
    """`amount` ~ N(shift, 1), `score` ~ U(0, 1), `channel` over `categories` (uniform)."""
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "amount": rng.normal(shift, 1.0, rows),
            "score": rng.uniform(0.0, 1.0, rows),
            "channel": rng.choice(categories or CATEGORIES, rows).tolist(),
        }
    )


def parquet(data: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(data, out)
    return out.getvalue()


def samples(data: pa.Table) -> list[dict[str, Any]]:
    """The rows of `data` as the HTTP intake and the event take them."""
    return [{"features": row} for row in data.to_pylist()]


def registered(team: str, model: str = "fraud", version: int = 1) -> CloudEvent:
    return new_event(
        ev.ModelVersionRegistered(
            team=team,
            model=model,
            version=version,
            artifact=ev.ModelArtifact(
                uri=f"s3://models/{model}/{version}/model.onnx",
                sha256="ab" * 32,
                size_bytes=2048,
                framework=ev.ModelFramework.SKLEARN,
            ),
            lineage=ev.Lineage(
                git_repository="https://git.example.com/ml/fraud",
                commit_sha="c" * 40,
                ci_run_url="https://ci.example.com/runs/42",
            ),
            registered_by="service:ci:github_actions",
            registered_at=AT,
        ),
        source="/mlplane/registry",
        subject=f"models/{team}/{model}/versions/{version}",
    )


def samples_event(
    team: str,
    data: pa.Table,
    *,
    model: str = "fraud",
    version: int = 1,
    environment: ev.Environment = ev.Environment.PROD,
) -> CloudEvent:
    return new_event(
        ev.DriftSamples(
            team=team,
            model=model,
            version=version,
            environment=environment,
            samples=tuple(ev.DriftSample.model_validate(s) for s in samples(data)),
        ),
        source=f"/model-servers/{team}/{model}",
        subject=f"models/{team}/{model}/versions/{version}",
    )
