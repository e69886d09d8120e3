"""A deployment may take smaller batches than the contract's 10,000 samples."""

from __future__ import annotations

import pytest
from mlplane_drift.settings import DriftSettings

from .conftest import Hosted, body
from .support.data import table


@pytest.fixture
def settings(settings: DriftSettings) -> DriftSettings:
    return settings.model_copy(update={"max_batch_samples": 50})


async def test_a_batch_past_the_configured_limit_is_refused_saying_so(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(500, seed=1))
    answer = await hosted.post(team, body(table(51, seed=2)))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "a batch holds at most 50 samples, this one 51: split it"
    assert answer.json()["max_samples"] == 50
    assert (await hosted.post(team, body(table(50, seed=3)))).status_code == 202
