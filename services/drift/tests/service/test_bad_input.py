"""Bad batches get clear problem+json errors and nothing else breaks: wrong schema,
nothing but missing values, empty, wrong types, too many samples, too large a body,
non-finite numbers. After all of them the window holds only the good batch."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from .conftest import Hosted, as_, body
from .support.data import table

PROBLEM = "application/problem+json"


def _batch(*samples: dict[str, Any]) -> dict[str, Any]:
    return {"model": "fraud", "version": 1, "environment": "prod", "samples": list(samples)}


GOOD = {"amount": 0.5, "score": 0.2, "channel": "x"}


@pytest.mark.parametrize(
    ("batch", "status", "detail"),
    [
        (
            _batch({"features": {**GOOD, "device": "ios"}}),
            422,
            "not in the reference profile: device",
        ),
        (
            _batch({"features": {"amount": None, "score": None}}, {"features": {}}),
            422,
            "every value of the batch is missing",
        ),
        (_batch(), 422, "samples"),
        (_batch({"features": {**GOOD, "amount": "a lot"}}), 422, "amount"),
        (_batch({"features": {**GOOD, "channel": [1, 2]}}), 422, "channel"),
        (
            _batch({"features": {"amount": 1.0}}, {"features": {"amount": 2.0}}),
            422,
            "no sample has a value for: channel, score",
        ),
        ({"model": "fraud", "version": 1, "samples": [{"features": GOOD}]}, 422, "environment"),
        ({**_batch({"features": GOOD}), "team": "someone-else"}, 422, "team"),
        (_batch({"features": GOOD}) | {"version": 0}, 422, "version"),
        (_batch({"features": GOOD}) | {"environment": "qa"}, 422, "environment"),
    ],
    ids=[
        "unknown-feature",
        "all-missing",
        "empty",
        "text-for-a-number",
        "list-value",
        "feature-never-sent",
        "no-environment",
        "team-in-body",
        "version-zero",
        "unknown-environment",
    ],
)
async def test_a_bad_batch_is_refused_clearly_and_the_window_is_untouched(
    hosted: Hosted, team: str, batch: dict[str, Any], status: int, detail: str
) -> None:
    await hosted.ready(team, table(500, seed=1))
    answer = await hosted.post(team, batch)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert detail in problem["detail"] + str(problem.get("errors", ""))
    good = await hosted.post(team, body(table(20, seed=2)))
    assert good.status_code == 202, good.text
    [window] = await hosted.windows(team)
    assert window.sample_count == 20
    if problem["type"].endswith("drift-invalid-samples"):
        metrics = generate_latest(REGISTRY).decode()
        assert 'mlplane_drift_batches_refused_total{reason="drift-invalid-samples",' in metrics


async def test_non_finite_numbers_are_refused(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(500, seed=1))
    raw = (
        b'{"model": "fraud", "version": 1, "environment": "prod", "samples": '
        b'[{"features": {"amount": NaN, "score": 0.1, "channel": "x"}}]}'
    )
    answer = await hosted.http.post(
        "/samples", content=raw, headers={**as_(team), "content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM


async def test_a_batch_past_the_sample_limit_is_refused(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(500, seed=1))
    huge = await hosted.post(team, body(table(10_001, seed=3)))
    assert huge.status_code == 422
    assert huge.headers["content-type"] == PROBLEM
    assert "samples" in str(huge.json()["errors"])


async def test_a_body_past_the_size_limit_is_refused_before_it_is_read(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(500, seed=1))
    padding = "x" * 1000
    samples = [{"features": {**GOOD, "channel": padding}} for _ in range(17_000)]
    answer = await hosted.post(team, _batch(*samples))
    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM
    assert await hosted.windows(team) == []


async def test_samples_for_a_version_without_reference_say_what_to_do(
    hosted: Hosted, team: str
) -> None:
    from .support.data import registered

    await hosted.deliver(registered(team))
    answer = await hosted.post(team, body(table(10, seed=1)))
    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert "PUT /models/fraud/versions/1/reference" in answer.json()["detail"]


async def test_a_window_that_cannot_be_judged_fails_alone_with_its_cause(
    hosted: Hosted, team: str
) -> None:
    from mlplane_drift.domain.windows import WindowPolicy
    from mlplane_drift.store import DriftStore

    await hosted.ready(team, table(2000, seed=1))
    reference = await hosted.http.get("/models/fraud/versions/1/reference", headers=as_(team))
    assert reference.status_code == 200
    async with hosted.context.uow_factory() as uow:
        store = DriftStore(uow.session, hosted.tables)
        profile_uri = (await store.reference(team, "fraud", 1)).profile_uri  # type: ignore[union-attr]
        await store.append_partial(
            team,
            "fraud",
            1,
            "prod",
            profile_uri=profile_uri,
            sample_count=1000,
            summary=b"not a window summary",
            policy=WindowPolicy(1000, None),
            now=hosted.clock(),
        )
        await uow.commit()
    assert await hosted.judge() == ["failed"]
    listed = await hosted.http.get("/models/fraud/versions/1/windows", headers=as_(team))
    [window] = listed.json()["windows"]
    assert (window["state"], window["samples"], window["attempts"]) == ("failed", 1000, 1)
    assert "not" in window["error"].lower() or "corrupt" in window["error"].lower()
    assert await hosted.events() == []
    # The next window is judged as usual.
    await hosted.post(team, body(table(1000, seed=2, shift=2.0)))
    assert await hosted.judge() == ["alerted"]
