"""HTTP intake to verdict on the real PostgreSQL and S3: batches fill a window, the
verdict worker judges it, the report is kept and served, `drift.detected` is in the
outbox exactly once."""

from __future__ import annotations

from .conftest import Hosted, as_, body
from .support.data import table

REFERENCE_ROWS = 2000


async def test_a_shifted_window_is_reported_and_alerted_exactly_once(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(REFERENCE_ROWS, seed=1))
    first = await hosted.post(team, body(table(600, seed=2, shift=1.5)))
    assert first.status_code == 202, first.text
    assert first.json()["window_closed"] is False
    assert await hosted.judge() == []  # nothing closed yet: nothing to judge
    second = await hosted.post(team, body(table(600, seed=3, shift=1.5)))
    assert second.json() == {
        "accepted": 600,
        "window_id": first.json()["window_id"],
        "window_samples": 1200,
        "window_closed": True,
        "reference_samples": None,
    }
    assert await hosted.judge() == ["alerted"]
    assert await hosted.judge() == []  # judged once
    [alert] = await hosted.events()
    assert alert["team"] == team
    assert (alert["model"], alert["version"], alert["environment"]) == ("fraud", 1, "prod")
    assert [f["feature"] for f in alert["features"] if f["drifted"]] == ["amount"]
    assert alert["sample_size"] == 1200
    assert alert["reference_size"] == REFERENCE_ROWS
    listed = await hosted.http.get("/models/fraud/reports", headers=as_(team))
    assert listed.status_code == 200, listed.text
    [summary] = listed.json()["reports"]
    assert summary["drifted_features"] == ["amount"]
    assert summary["alert_fired"] is True
    assert summary["report_uri"] == alert["report_uri"]
    assert summary["report_uri"].startswith(f"s3://{hosted.bucket}/drift/teams/{team}/")
    report = await hosted.http.get(f"/reports/{summary['id']}", headers=as_(team))
    assert report.status_code == 200
    features = {f["feature"]: f for f in report.json()["features"]}
    assert set(features) == {"amount", "score", "channel"}
    assert features["amount"]["method"] == "wasserstein"
    assert features["channel"]["method"] == "jensen_shannon"
    assert features["amount"]["distribution"]["kind"] == "numeric"
    assert abs(sum(features["amount"]["distribution"]["current"]) - 1.0) < 1e-6
    # The same document is kept in object storage.
    stored = await hosted.blobs.get(summary["report_uri"])
    assert b'"amount"' in stored


async def test_a_window_like_the_reference_is_clean_and_emits_nothing(
    hosted: Hosted, team: str
) -> None:
    await hosted.ready(team, table(REFERENCE_ROWS, seed=1))
    answer = await hosted.post(team, body(table(1000, seed=5)))
    assert answer.json()["window_closed"] is True
    assert await hosted.judge() == ["clean"]
    assert await hosted.events() == []
    [summary] = (await hosted.http.get("/models/fraud/reports", headers=as_(team))).json()[
        "reports"
    ]
    assert summary["dataset_drifted"] is False
    assert summary["drifted_features"] == []


async def test_reports_render_as_html_and_png(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(REFERENCE_ROWS, seed=1))
    await hosted.post(team, body(table(1000, seed=2, shift=2.0)))
    await hosted.judge()
    [summary] = (await hosted.http.get("/models/fraud/reports", headers=as_(team))).json()[
        "reports"
    ]
    html = await hosted.http.get(f"/reports/{summary['id']}?format=html", headers=as_(team))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.count("<svg") == 3  # one chart per feature
    assert "amount" in html.text
    png = await hosted.http.get(f"/reports/{summary['id']}?format=png", headers=as_(team))
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    bad = await hosted.http.get(f"/reports/{summary['id']}?format=pdf", headers=as_(team))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
