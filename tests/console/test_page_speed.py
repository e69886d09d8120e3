"""How fast the console's pages answer with 10,000 versions of one model in the registry.

The versions are copies of one registered version, written straight into the
registry's table (registering 10,000 through the API would take minutes and
build 10,000 images). The figures are the gateway's own `Server-Timing` (the
page's time in the server: session, rate limit, the registry's answer, rendering)
and the time the client saw, median and 95th percentile over repeated requests;
they are printed, not asserted (a shared 2-core machine makes no promise).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from typing import Any

import httpx
import psycopg2

from .conftest import make_key

VERSIONS = 10_000
REQUESTS = 30
MODEL = "bulk"
NEXT = re.compile(r'href="(/console/models/bulk\?cursor=[^"]+)" rel="next"')


def _register_one(http: httpx.Client) -> None:
    content = b"bulk model" * 10
    sha256 = hashlib.sha256(content).hexdigest()
    assert http.post("/v1/registry/models", json={"name": MODEL}).status_code == 201
    plan = http.post(
        f"/v1/registry/models/{MODEL}/uploads",
        json={"size_bytes": len(content), "sha256": sha256, "filename": "model.pkl"},
    ).json()
    part = plan["parts"][0]
    etag = httpx.put(part["url"], content=content, timeout=30.0).headers["etag"]
    artifact = http.post(
        f"/v1/registry/models/{MODEL}/uploads/{plan['upload_id']}/complete",
        json={"parts": [{"number": 1, "etag": etag}]},
    ).json()
    registered = http.post(
        f"/v1/registry/models/{MODEL}/versions",
        json={
            "framework": "sklearn",
            "artifact": {
                "uri": artifact["uri"],
                "size_bytes": artifact["size_bytes"],
                "sha256": artifact["sha256"],
            },
            "lineage": {
                "git_repository": "https://git.example.com/acme/bulk",
                "commit_sha": "0123456789abcdef0123456789abcdef01234567",
                "ci_run_url": "https://ci.example.com/acme/bulk/runs/1",
            },
        },
    )
    assert registered.status_code == 201, registered.text


def _copy_versions(database_url: str, count: int) -> None:
    """Versions 2..count as copies of version 1, one millisecond apart."""
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO registry.model_versions (
                    model_id, team, model, version, framework, artifact, lineage, signature,
                    tags, status_message, stage, lifecycle, ci_run_id, registered_by, etag,
                    created_at, updated_at)
                SELECT v.model_id, v.team, v.model, g, v.framework, v.artifact, v.lineage,
                       v.signature, v.tags, v.status_message, v.stage, v.lifecycle, NULL,
                       v.registered_by, v.etag || '-' || g,
                       v.created_at + g * interval '1 millisecond',
                       v.created_at + g * interval '1 millisecond'
                FROM registry.model_versions v, generate_series(2, %s) g
                WHERE v.model = %s AND v.version = 1
                """,
                (count, MODEL),
            )
            cursor.execute(
                "SELECT count(*) FROM registry.model_versions WHERE model = %s", (MODEL,)
            )
            (stored,) = cursor.fetchone()
            assert stored == count
            cursor.execute("ANALYZE registry.model_versions")
    finally:
        connection.close()


def _timed(client: httpx.Client, path: str) -> tuple[float, float, str]:
    """(server ms from Server-Timing, client ms, the page)."""
    started = time.perf_counter()
    answer = client.get(path)
    seen_ms = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.text[:500]
    server_ms = float(answer.headers["server-timing"].split("dur=")[1])
    return server_ms, seen_ms, answer.text


def _summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    server = sorted(s for s, _ in samples)
    seen = sorted(c for _, c in samples)

    def p95(values: list[float]) -> float:
        return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]

    return {
        "server_median_ms": round(statistics.median(server), 1),
        "server_p95_ms": round(p95(server), 1),
        "client_median_ms": round(statistics.median(seen), 1),
        "client_p95_ms": round(p95(seen), 1),
    }


def test_pages_with_ten_thousand_versions(platform: Any, platform_database: str) -> None:
    key = make_key(platform, "default", "bench", ["models:read", "models:write"])["key"]
    with httpx.Client(
        base_url=platform.url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    ) as http:
        _register_one(http)
    _copy_versions(platform_database, VERSIONS)

    figures: dict[str, Any] = {"versions": VERSIONS, "requests_per_page": REQUESTS}
    with httpx.Client(base_url=platform.url, timeout=30.0) as client:
        signed_in = client.post(
            "/console/sign-in", data={"api_key": key}, headers={"Origin": platform.url}
        )
        assert signed_in.status_code == 303
        # Warm: the first request of a process pays for template compilation.
        _timed(client, f"/console/models/{MODEL}")

        first = [_timed(client, f"/console/models/{MODEL}") for _ in range(REQUESTS)]
        assert "v50" in first[0][2]
        figures["model_first_page"] = _summary([(s, c) for s, c, _ in first])

        # Walk 100 pages in (versions 5001..5050), then time that page.
        path = f"/console/models/{MODEL}"
        for _ in range(100):
            link = NEXT.search(client.get(path).text)
            assert link is not None
            path = link.group(1).replace("&amp;", "&")
        deep = [_timed(client, path) for _ in range(REQUESTS)]
        assert "v5001" in deep[0][2]
        figures["model_page_101"] = _summary([(s, c) for s, c, _ in deep])

        listing = [_timed(client, "/console/") for _ in range(REQUESTS)]
        figures["models_list"] = _summary([(s, c) for s, c, _ in listing])
    print("\nconsole page speed: " + json.dumps(figures))
