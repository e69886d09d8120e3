"""A version without a reference takes its first N samples as the reference when the
setting says so; later samples fill windows judged against it."""

from __future__ import annotations

import httpx
import pytest
from mlplane_drift.settings import DriftSettings

from .conftest import Hosted, as_, body
from .support.data import registered, table


@pytest.fixture
def settings(settings: DriftSettings) -> DriftSettings:
    return settings.model_copy(update={"reference_from_samples": 1000})


async def test_the_first_samples_become_the_reference(hosted: Hosted, team: str) -> None:
    await hosted.deliver(registered(team))
    first = await hosted.post(team, body(table(600, seed=1)))
    assert first.status_code == 202, first.text
    assert first.json() == {
        "accepted": 600,
        "window_id": None,
        "window_samples": None,
        "window_closed": False,
        "reference_samples": 600,
    }
    missing = await hosted.http.get("/models/fraud/versions/1/reference", headers=as_(team))
    assert missing.status_code == 404
    second = await hosted.post(team, body(table(600, seed=2)))
    assert second.json()["reference_samples"] == 1200
    reference = await hosted.http.get("/models/fraud/versions/1/reference", headers=as_(team))
    assert reference.status_code == 200, reference.text
    assert reference.json()["rows"] == 1200
    assert reference.json()["source"] == "the first 1200 samples"
    assert [f["name"] for f in reference.json()["features"]] == ["amount", "score", "channel"]
    assert await hosted.windows(team) == []  # the reference's samples are no window's
    shifted = await hosted.post(team, body(table(1000, seed=3, shift=2.0)))
    assert shifted.json()["window_closed"] is True
    assert await hosted.judge() == ["alerted"]


async def test_first_samples_of_mixed_types_are_refused(hosted: Hosted, team: str) -> None:
    await hosted.deliver(registered(team))
    mixed = {
        "model": "fraud",
        "version": 1,
        "environment": "prod",
        "samples": [{"features": {"amount": 1.0}}, {"features": {"amount": "high"}}],
    }
    answer: httpx.Response = await hosted.post(team, mixed)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "one type each" in answer.json()["detail"]
