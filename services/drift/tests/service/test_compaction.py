"""An open window's many partial summaries are merged into one in the background, and
the verdict is the one the uncompacted window gets."""

from __future__ import annotations

import pyarrow as pa
import pytest
from mlplane_drift.detect import DriftConfig
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.settings import DriftSettings
from mlplane_drift.summaries import judge, summarise
from sqlalchemy import func, select

from .conftest import Hosted, as_, body
from .support.data import table

BATCHES = 9


@pytest.fixture
def settings(settings: DriftSettings) -> DriftSettings:
    return settings.model_copy(update={"compact_partials_over": 3, "window_count": 900})


async def _partials(hosted: Hosted, window_id: int) -> int:
    p = hosted.tables.partials
    async with hosted.context.uow_factory.reading() as uow:
        found = await uow.session.execute(
            select(func.count()).select_from(p).where(p.c.window_id == window_id)
        )
        return int(found.scalar_one())


async def test_many_partials_are_merged_and_the_verdict_stays(hosted: Hosted, team: str) -> None:
    reference = table(2000, seed=1)
    await hosted.ready(team, reference)
    batches = [table(90, seed=20 + i, shift=0.5) for i in range(BATCHES)]
    for batch in batches:
        answer = await hosted.post(team, body(batch))
        assert answer.json()["window_closed"] is False
    [window] = await hosted.windows(team)
    assert await _partials(hosted, window.id) == BATCHES
    assert await hosted.drift.worker.compact() == 1
    assert await _partials(hosted, window.id) == 1
    assert await hosted.drift.worker.compact() == 0  # nothing left to merge
    last = table(90, seed=99, shift=0.5)
    closing = await hosted.post(team, body(last))
    assert closing.json()["window_closed"] is True
    assert await _partials(hosted, window.id) == 2
    await hosted.judge()
    [report] = (await hosted.http.get("/models/fraud/reports", headers=as_(team))).json()["reports"]
    document = (await hosted.http.get(f"/reports/{report['id']}", headers=as_(team))).json()
    profile = ReferenceProfile.from_table(reference)
    blob, count = summarise(profile, pa.concat_tables([*batches, last]))
    alone = judge(profile, [blob], DriftConfig()).verdict
    assert document["window"]["samples"] == count == 900
    scores = {f["feature"]: (f["drifted"], f["score"]) for f in document["features"]}
    for result in alone.features:
        drifted, score = scores[result.feature]
        assert drifted == result.drifted
        assert score == pytest.approx(result.score, rel=1e-9)
