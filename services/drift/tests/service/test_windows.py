"""Windows by time and by count per model and environment, and the hysteresis across
windows: a persistent drift alerts once, re-arms after clean windows."""

from __future__ import annotations

from .conftest import Hosted, as_, body
from .support.data import table


async def test_a_time_window_closes_when_its_time_is_up(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(2000, seed=1))
    policy = await hosted.http.put(
        "/models/fraud/environments/staging/window", json={"seconds": 60}, headers=as_(team)
    )
    assert policy.status_code == 200, policy.text
    assert policy.json() == {
        "model": "fraud",
        "environment": "staging",
        "count": None,
        "seconds": 60.0,
        "default": False,
    }
    for seed in (2, 3, 4):
        answer = await hosted.post(
            team, body(table(300, seed=seed, shift=1.5), environment="staging")
        )
        assert answer.json()["window_closed"] is False  # 900 samples: no count limit here
        hosted.clock.advance(10)
    assert await hosted.judge() == []
    hosted.clock.advance(30)  # 60 s after the first sample
    assert await hosted.judge() == ["alerted"]
    [window] = await hosted.windows(team, environment="staging")
    assert (window.state, window.sample_count) == ("done", 900)
    [alert] = await hosted.events()
    assert alert["environment"] == "staging"
    assert alert["window_end"].startswith("2026-12-05T09:01:00")  # its time, not the judging's
    # The next sample opens a new window; prod still uses the default (by count).
    await hosted.post(team, body(table(10, seed=5), environment="staging"))
    assert [w.state for w in await hosted.windows(team, environment="staging")] == ["done", "open"]
    default = await hosted.http.get("/models/fraud/environments/prod/window", headers=as_(team))
    assert default.json()["default"] is True
    assert default.json()["count"] == 1000


async def test_a_late_batch_after_the_window_time_opens_the_next_window(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(2000, seed=1))
    await hosted.http.put(
        "/models/fraud/environments/prod/window",
        json={"seconds": 60, "count": 5000},
        headers=as_(team),
    )
    first = await hosted.post(team, body(table(200, seed=2)))
    hosted.clock.advance(61)
    second = await hosted.post(team, body(table(200, seed=3)))
    assert second.json()["window_id"] != first.json()["window_id"]
    windows = await hosted.windows(team)
    assert [(w.state, w.sample_count) for w in windows] == [("closed", 200), ("open", 200)]


async def test_a_persistent_drift_alerts_once_and_again_when_worse_or_after_clean_windows(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(2000, seed=1))
    skewed = ["x", "x", "x", "x", "y", "z"]
    # (amount shift, channel categories): one feature drifted is a warning, two of three
    # (at least the 0.5 share) a severe dataset drift. Windows of 1000 samples; the
    # alert re-arms after 2 clean windows.
    windows = [
        (2.0, None),  # warning: fires
        (2.0, None),  # still warning: quiet
        (0.0, None),  # clean (1)
        (2.0, skewed),  # severe, worse than reported: fires
        (0.0, None),  # clean (1)
        (0.0, None),  # clean (2): re-armed
        (2.0, None),  # warning: fires again
    ]
    outcomes = []
    for index, (shift, categories) in enumerate(windows):
        data = table(1000, seed=100 + index, shift=shift, categories=categories)
        await hosted.post(team, body(data))
        outcomes += await hosted.judge()
    assert outcomes == ["alerted", "drifted", "clean", "alerted", "clean", "clean", "alerted"]
    alerts = await hosted.events()
    assert [a["severity"] for a in alerts] == ["warning", "severe", "warning"]
    assert [sorted(f["feature"] for f in a["features"]) for a in alerts] == [
        ["amount"],
        ["amount", "channel"],
        ["amount"],
    ]
    reports = (await hosted.http.get("/models/fraud/reports?limit=10", headers=as_(team))).json()
    assert [r["alert_fired"] for r in reversed(reports["reports"])] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
    ]
