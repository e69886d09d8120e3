"""A FastAPI model server that sends its predictions to the mlplane drift service.

Run it with `uvicorn fastapi_model_server:app` after setting:

    MLPLANE_URL          the gateway, e.g. https://mlplane.example
    MLPLANE_API_KEY      an API key with scope events:publish
    MODEL_NAME, MODEL_VERSION, MODEL_ENVIRONMENT
    DRIFT_SAMPLE_RATE    optional, share of predictions to send (default 0.1)

The client is created in the lifespan and closed on shutdown (flushing what is queued, for
at most five seconds). `record` never blocks or raises, so the prediction path does not
depend on the drift service being up; `/drift-client` shows what was sent and dropped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from mlplane_drift.client import DriftClient
from pydantic import BaseModel


class Applicant(BaseModel):
    age: float
    income: float
    city: str
    has_card: bool


class Decision(BaseModel):
    approve: bool
    score: float


def predict(applicant: Applicant) -> Decision:
    # Stands in for the real model.
    score = min(1.0, max(0.0, applicant.income / 100_000 - (applicant.age < 21) * 0.2))
    return Decision(approve=score > 0.5, score=score)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client = DriftClient(
        os.environ["MLPLANE_URL"],
        os.environ["MLPLANE_API_KEY"],
        model=os.environ.get("MODEL_NAME", "credit"),
        version=int(os.environ.get("MODEL_VERSION", "1")),
        environment=os.environ.get("MODEL_ENVIRONMENT", "prod"),
        sample_rate=float(os.environ.get("DRIFT_SAMPLE_RATE", "0.1")),
    )
    app.state.drift = client
    try:
        yield
    finally:
        client.close(timeout=5.0)


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict_route(applicant: Applicant, request: Request) -> Decision:
    decision = predict(applicant)
    request.app.state.drift.record(applicant.model_dump(), prediction=decision.score)
    return decision


@app.get("/drift-client")
def drift_client_stats(request: Request) -> dict[str, Any]:
    return asdict(request.app.state.drift.stats)
