"""`drift.samples` events through the drift service's consumer: each delivered twice is
counted once, a full window is judged, a batch that can never be taken is dead-lettered
with its reason, and nothing else breaks."""

from __future__ import annotations

import pytest
from mlplane_runtime.bus.base import PoisonMessage

from .conftest import Hosted
from .support.data import registered, samples_event, table


async def test_batches_delivered_twice_are_counted_once_and_judged(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(2000, seed=1))
    batches = [samples_event(team, table(400, seed=10 + i, shift=1.5)) for i in range(3)]
    for event in batches:
        await hosted.deliver(event, event)
    [window] = await hosted.windows(team)
    assert (window.sample_count, window.state) == (1200, "closed")
    assert await hosted.judge() == ["alerted"]
    [alert] = await hosted.events()
    assert alert["sample_size"] == 1200


async def test_the_version_registered_event_is_idempotent(hosted: Hosted, team: str) -> None:
    event = registered(team, "fraud", 3)
    await hosted.deliver(event, event)
    answer = await hosted.http.get(
        "/models/fraud/versions/3/reference", headers={"X-Mlplane-Team": team}
    )
    assert answer.status_code == 404
    assert "no reference profile" in answer.json()["detail"]


async def test_samples_that_can_never_be_taken_are_dead_lettered_with_the_reason(
    hosted: Hosted, team: str
) -> None:
    with pytest.raises(PoisonMessage, match="has no version 1 registered"):
        await hosted.deliver(samples_event(team, table(10, seed=1)))
    await hosted.deliver(registered(team))
    with pytest.raises(PoisonMessage, match="no reference profile yet"):
        await hosted.deliver(samples_event(team, table(10, seed=1)))
    await hosted.ready(team, table(500, seed=1))
    wrong = table(10, seed=1).rename_columns(["amount", "score", "device"])
    with pytest.raises(PoisonMessage, match="not in the reference profile: device"):
        await hosted.deliver(samples_event(team, wrong))
    # Nothing else broke: a good batch still goes in.
    await hosted.deliver(samples_event(team, table(10, seed=2)))
    [window] = await hosted.windows(team)
    assert window.sample_count == 10
