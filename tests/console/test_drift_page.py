"""The drift page's charts in a browser, from drift reports as the drift service lists
and serves them (`GET /models/{model}/reports`, `GET /reports/{id}`).

The gateway's drift upstream is pointed at a stand-in serving two reports of the
drift service's JSON shape (the drift service itself lives on another branch until it
is merged); the console calls it exactly as it would call the service: with the
identity the facade signs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .conftest import ALL_SCOPES, BOOTSTRAP_KEY, assert_accessible, e2e, make_key, shot, sign_in

OLD = "6f1b7a52-0000-4000-8000-000000000001"
NEW = "6f1b7a52-0000-4000-8000-000000000002"


def _report(report_id: str, end: str, amount_score: float, current: list[float]) -> dict[str, Any]:
    return {
        "id": report_id,
        "team": "default",
        "model": "fraud",
        "version": 1,
        "environment": "prod",
        "window": {"id": 1, "start": end, "end": end, "samples": 500},
        "reference": {"profile_uri": "s3://x/profile", "rows": 1000},
        "drift_share": 0.5,
        "dataset_drifted": amount_score > 0.1,
        "severity": "warning" if amount_score > 0.1 else None,
        "alert_fired": amount_score > 0.1,
        "created_at": end,
        "features": [
            {
                "feature": "amount",
                "kind": "numeric",
                "method": "ks",
                "score": amount_score,
                "threshold": 0.1,
                "drifted": amount_score > 0.1,
                "distribution": {
                    "bins": [[0, 10], [10, 100], [100, 1000]],
                    "reference": [0.6, 0.3, 0.1],
                    "current": current,
                },
            },
            {
                "feature": "country",
                "kind": "categorical",
                "method": "chi2",
                "score": 0.01,
                "threshold": 0.05,
                "drifted": False,
                "distribution": {
                    "categories": ["de", "fr", "it"],
                    "reference": [0.5, 0.3, 0.2],
                    "current": [0.5, 0.3, 0.2],
                },
            },
        ],
    }


REPORTS = {
    OLD: _report(OLD, "2026-12-01T10:00:00+00:00", 0.04, [0.58, 0.32, 0.1]),
    NEW: _report(NEW, "2026-12-02T10:00:00+00:00", 0.42, [0.2, 0.3, 0.5]),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def drift_url() -> Iterator[str]:
    seen: list[str] = []

    def signed(request: Request) -> bool:
        # The gateway signs every call; the stand-in checks it came through that path.
        return bool(request.headers.get("x-mlplane-identity")) and (
            request.headers.get("x-mlplane-team") == "default"
        )

    async def reports(request: Request) -> Response:
        seen.append(request.url.path)
        if not signed(request):
            return JSONResponse({"detail": "unsigned"}, status_code=401)
        summaries = [
            {
                "id": r["id"],
                "model": "fraud",
                "version": 1,
                "environment": "prod",
                "window_start": r["window"]["start"],
                "window_end": r["window"]["end"],
                "sample_size": 500,
                "reference_size": 1000,
                "drift_share": r["drift_share"],
                "dataset_drifted": r["dataset_drifted"],
                "severity": r["severity"],
                "alert_fired": r["alert_fired"],
                "drifted_features": [f["feature"] for f in r["features"] if f["drifted"]],
                "report_uri": "s3://x/report.json",
                "created_at": r["created_at"],
            }
            for r in (REPORTS[NEW], REPORTS[OLD])
        ]
        return JSONResponse({"reports": summaries})

    async def report(request: Request) -> Response:
        if not signed(request):
            return JSONResponse({"detail": "unsigned"}, status_code=401)
        found = REPORTS.get(request.path_params["report_id"])
        if found is None:
            return JSONResponse({"detail": "no such report"}, status_code=404)
        return JSONResponse(found)

    app = Starlette(
        routes=[
            Route("/drift/models/{model}/reports", reports),
            Route("/drift/reports/{report_id}", report),
        ]
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory, drift_url: str
) -> Iterator[Any]:
    yield from e2e.running_platform(
        platform_database,
        tmp_path_factory,
        {
            "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
            "MLPLANE_GATEWAY_DRIFT_URL": drift_url,
        },
    )


def test_drift_charts_reference_against_current_and_score_over_time(
    platform: Any, page: Page
) -> None:
    key = make_key(platform, "default", "drift-viewer", ALL_SCOPES)["key"]
    sign_in(page, platform.url, key)
    page.goto(platform.url + "/console/drift?model=fraud")
    charts = page.locator("section.chart")
    expect(charts).to_have_count(2)
    # The drifted feature first, each with its two charts drawn by Chart.js (under the CSP).
    expect(charts.first.get_by_role("heading")).to_contain_text("amount")
    expect(charts.first.get_by_role("heading")).to_contain_text("drifted")
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('canvas[data-chart]')]"
        ".map(c => [c.dataset.chart, window.Chart.getChart(c)?.data.datasets.length ?? 0])"
    )
    assert drawn == [["distribution", 2], ["score", 2], ["distribution", 2], ["score", 2]]
    scores = page.evaluate(
        "() => window.Chart.getChart(document.querySelector('canvas[data-chart=score]'))"
        ".data.datasets[0].data"
    )
    assert scores == [0.04, 0.42]
    # The same numbers as a table, for people who cannot see the chart.
    charts.first.get_by_text("Data as a table").click()
    expect(charts.first.locator("table")).to_contain_text("100 to 1e+03")
    shot(page, "12-drift-charts")
    assert_accessible(page, "drift charts")
