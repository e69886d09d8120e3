"""The console in a browser against a running platform (`mlplane up`, embedded defaults).

A person signs in, finds a model, follows its version from upload to a committed
deployment, approves one (as someone else), adds a scan exception, watches events
arrive live and rolls back; each page is checked with axe-core (no serious or
critical violation) and saved as a screenshot. Then what a browser does not show:
the session cookie, CSRF refusals, a revoked key's session, another team's view.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import BOOTSTRAP_KEY, assert_accessible, make_key, shot, sign_in

TEAM = "default"
MODEL = "fraud"
LINEAGE = {
    "git_repository": "https://git.example.com/acme/fraud",
    "commit_sha": "3f1c2a9b7d4e5f60718293a4b5c6d7e8f9012345",
    "ci_run_url": "https://ci.example.com/acme/fraud/runs/42",
    "git_ref": "refs/heads/main",
}
SCANNED_WITHIN_MS = 120_000
COMMITTED_WITHIN_MS = 60_000
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, (
        f"{answer.request.method} {answer.request.url} answered {answer.status_code}: "
        f"{answer.text[:1000]}"
    )
    return answer.json() if answer.content else None


def _publish(http: httpx.Client, model: str, content: bytes, versions: int = 1) -> None:
    """What CI does: create the model, upload the artifact, register `versions` versions
    of it."""
    _ok(http.post("/v1/registry/models", json={"name": model, "description": "card fraud"}), 201)
    sha256 = hashlib.sha256(content).hexdigest()
    plan = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads",
            json={"size_bytes": len(content), "sha256": sha256, "filename": "model.pkl"},
        ),
        201,
    )
    parts = []
    offset = 0
    for part in plan["parts"]:
        chunk = content[offset : offset + part["size_bytes"]]
        offset += part["size_bytes"]
        put = httpx.put(part["url"], content=chunk, timeout=30.0)
        assert put.status_code == 200, put.text
        parts.append({"number": part["number"], "etag": put.headers["etag"]})
    artifact = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": parts},
        )
    )
    for _ in range(versions):
        _ok(
            http.post(
                f"/v1/registry/models/{model}/versions",
                json={
                    "framework": "sklearn",
                    "artifact": {
                        "uri": artifact["uri"],
                        "size_bytes": artifact["size_bytes"],
                        "sha256": artifact["sha256"],
                        "media_type": "application/octet-stream",
                    },
                    "lineage": LINEAGE,
                },
            ),
            201,
        )


def _reload_until(page: Page, selector: str, pattern: re.Pattern[str], within_ms: int) -> str:
    """Reload `page` until `selector`'s text matches `pattern`; its text."""
    deadline = time.monotonic() + within_ms / 1000
    text = ""
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text()
        if pattern.search(text):
            return text
        page.wait_for_timeout(500)
        page.reload()
    pytest.fail(f"{selector} on {page.url} still reads {text!r} (waiting for {pattern.pattern})")


def test_a_person_follows_a_version_from_upload_to_rollback(
    platform: Any, http: httpx.Client, admin_key: str, browser: Browser, page: Page
) -> None:
    # What the team set up beforehand, through the API: no vulnerability database in the
    # embedded mode, so prod's scan policy lets unassessed images pass; prod needs one
    # approval and no healthy staging (no cluster here).
    _ok(
        http.put(
            "/v1/scanner/policies/prod",
            json={"max_severity": "high", "block_when_vulnerabilities_not_assessed": False},
        )
    )
    _ok(
        http.put(
            "/v1/deployer/policies/prod",
            json={"approvals_required": 1, "require_healthy_in_previous": False},
        )
    )
    approver = make_key(platform, TEAM, "approver", ["models:read", "deploy:approve"])
    # Two versions: v2 is deployed over v1 in dev and rolled back (a rollback reverts a
    # change, so there must be one before it).
    _publish(http, MODEL, b"\x80\x04\x95fraud\x00" + bytes(range(256)) * 8, versions=2)

    base = platform.url
    sign_in(page, base, admin_key)
    assert_accessible(page, "models")

    # A second tab watches the live event stream from now on.
    events = page.context.new_page()
    events.goto(base + "/console/events")
    expect(events.locator("#stream-status")).to_have_text("live", timeout=10_000)
    assert_accessible(events, "events")

    # Find the model by typing its name (htmx swaps the table in), open it.
    page.get_by_label("Find a model by name").fill("fra")
    page.get_by_role("link", name=MODEL, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(MODEL)
    expect(page.get_by_role("rowheader", name=re.compile(r"^v1\b"))).to_be_visible()
    expect(page.locator("table.versions")).to_contain_text(LINEAGE["commit_sha"][:12])
    shot(page, "01-model")
    assert_accessible(page, "model")

    # The version: built and scanned by the platform while we watch.
    page.get_by_role("link", name="v1", exact=True).click()
    _reload_until(page, "#stage", re.compile(r"scanned|deployed"), SCANNED_WITHIN_MS)
    expect(page.locator("dl.facts")).to_contain_text(LINEAGE["ci_run_url"])
    expect(page.locator("dl.facts")).to_contain_text("sha256:")
    shot(page, "02-version-scanned")
    assert_accessible(page, "version")
    version_url = page.url

    # Deploy to dev from the page: committed to the GitOps repository (htmx refreshes it).
    page.get_by_label("Environment").fill("dev")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#phase")).to_have_text("committed", timeout=COMMITTED_WITHIN_MS)
    expect(page.locator("#gitops-commit")).not_to_have_text("—")
    shot(page, "03-deployed-dev")
    assert_accessible(page, "deployment")

    # The deployment's events reached the other tab while it was open.
    expect(
        events.locator("tr.event", has_text="io.mlplane.deployment.status_changed.v1").first
    ).to_be_visible(timeout=30_000)
    shot(events, "04-events-live")

    # Prod needs an approval from someone other than the requester.
    page.goto(version_url)
    page.get_by_label("Environment").fill("prod")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#needs-approval")).to_be_visible()
    # Waiting for an approval, the page stops refreshing: the button and focus stay put.
    assert page.locator("#deployment-live").get_attribute("hx-trigger") is None
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_contain_text("request")
    shot(page, "05-requester-cannot-approve")
    prod_url = page.url.removesuffix("/approve")

    approver_context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        colleague = approver_context.new_page()
        sign_in(colleague, base, approver["key"])
        colleague.goto(prod_url)
        colleague.get_by_role("button", name="Approve").click()
        expect(colleague.get_by_role("status").first).to_contain_text("approved")
        expect(colleague.locator("#approved-by")).to_contain_text(approver["id"])
        expect(colleague.locator("#phase")).to_have_text("committed", timeout=COMMITTED_WITHIN_MS)
        shot(colleague, "06-approved-prod")
        # An approver without deploy:write gets no rollback button.
        expect(colleague.get_by_role("link", name="Roll back…")).to_have_count(0)
    finally:
        approver_context.close()

    # The scan: findings, verdicts with their policy versions, an exception added.
    page.goto(version_url)
    page.locator("dl.facts").get_by_role("link", name=re.compile("^sha256:")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Scan of")
    expect(page.locator("body")).to_contain_text("Policy version")
    sbom_link = page.get_by_role("link", name=re.compile("Download the SBOM")).first
    with page.expect_download() as downloading:
        sbom_link.click()
    sbom = downloading.value
    assert sbom.suggested_filename.startswith("sbom-")
    assert json.loads(Path(sbom.path()).read_text())["bomFormat"] == "CycloneDX"
    page.get_by_label("Environment").select_option("prod")
    page.get_by_label("Finding id").fill("CVE-2024-0001")
    page.get_by_label("Owner").fill("risk-team")
    page.get_by_label("Reason").fill("not reachable from the model server")
    page.get_by_label("Expires on").fill((date.today() + timedelta(days=30)).isoformat())
    page.get_by_role("button", name="Add exception").click()
    expect(page.get_by_role("status").first).to_contain_text("exception added")
    exceptions = page.locator("section", has=page.get_by_role("heading", name="Exceptions"))
    expect(exceptions).to_contain_text("CVE-2024-0001")
    expect(exceptions).to_contain_text("risk-team")
    shot(page, "07-scan-exception")
    assert_accessible(page, "scan")

    # v2 goes to dev over v1, and is rolled back through its confirmation page.
    page.goto(version_url.removesuffix("/versions/1") + "/versions/2")
    _reload_until(page, "#stage", re.compile(r"scanned|deployed"), SCANNED_WITHIN_MS)
    page.get_by_label("Environment").fill("dev")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#phase")).to_have_text("committed", timeout=COMMITTED_WITHIN_MS)
    page.get_by_role("button", name="Roll back…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Roll back")
    assert_accessible(page, "rollback confirmation")
    page.get_by_role("button", name="Yes, roll back").click()
    expect(page.get_by_role("status").first).to_contain_text("rollback requested")
    _reload_until(page, "#rollback-commit", re.compile(r"[0-9a-f]{7,}"), COMMITTED_WITHIN_MS)
    shot(page, "08-rolled-back")

    # Deployments per environment, drift, dead letters: each page answers and is accessible.
    page.goto(base + "/console/deployments")
    expect(page.get_by_role("heading", name="dev")).to_be_visible()
    expect(page.get_by_role("heading", name="prod")).to_be_visible()
    shot(page, "09-deployments")
    assert_accessible(page, "deployments")

    page.goto(base + f"/console/drift?model={MODEL}")
    if http.get(f"/v1/drift/models/{MODEL}/reports").status_code == 503:
        expect(page.locator("#drift-not-installed")).to_contain_text("not installed")
    else:
        expect(page.get_by_label("Model")).to_have_value(MODEL)
    shot(page, "10-drift")
    assert_accessible(page, "drift")

    page.goto(base + "/console/dead-letters?service=deployer")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dead letters")
    assert_accessible(page, "dead letters")

    page.goto(base + "/console/scans")
    expect(page.get_by_role("link", name=f"{MODEL} v1")).to_be_visible()
    assert_accessible(page, "scans")

    # Signing out ends the session: the pages send you back to sign in.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.goto(base + "/console/scans")
    expect(page.get_by_label("API key")).to_be_visible()
    events.close()


def test_a_wrong_key_is_refused_on_an_accessible_page(platform: Any, page: Page) -> None:
    page.goto(platform.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_accessible(page, "sign in")
    page.get_by_label("API key").fill("mlp_abcdefgh_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    shot(page, "00-sign-in-refused")
    assert_accessible(page, "sign in refused")


# -- what the browser does not show -----------------------------------------------------


@contextmanager
def _session(platform: Any, key: str) -> Iterator[httpx.Client]:
    """A client holding a console session opened with `key` (its cookie kept)."""
    with httpx.Client(base_url=platform.url, timeout=30.0, follow_redirects=False) as client:
        answer = client.post(
            "/console/sign-in",
            data={"api_key": key, "next": "/console/"},
            headers=_origin(platform),
        )
        assert answer.status_code == 303, answer.text
        yield client


def _origin(platform: Any) -> dict[str, str]:
    return {"Origin": platform.url}


def test_the_session_cookie_and_the_page_headers(platform: Any, admin_key: str) -> None:
    with httpx.Client(base_url=platform.url, timeout=30.0) as client:
        answer = client.post(
            "/console/sign-in", data={"api_key": admin_key}, headers=_origin(platform)
        )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes, cookie
    assert "samesite=strict" in cookie.lower()
    # Plain http on loopback: a Secure cookie would never come back (sessions.py).
    assert "secure" not in attributes
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 43
    assert admin_key not in cookie

    with _session(platform, admin_key) as client:
        page = client.get("/console/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["server-timing"].startswith("app;dur=")
        # Every script and stylesheet is a file with a content hash, cached for a year.
        assets = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page.text)
        assert len(assets) >= 4
        assert "<script>" not in page.text
        for path in assets:
            asset = client.get(path)
            assert asset.status_code == 200, path
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_form_posts_need_the_session_token_and_this_origin(platform: Any, admin_key: str) -> None:
    target = "/console/deployments/00000000-0000-0000-0000-000000000000/approve"
    with _session(platform, admin_key) as client:
        token = CSRF.search(client.get("/console/").text)
        assert token is not None
        without_token = client.post(target, data={"confirm": "yes"}, headers=_origin(platform))
        assert without_token.status_code == 403
        assert "CSRF" in without_token.text
        foreign = client.post(
            target, data={"csrf_token": token.group(1)}, headers={"Origin": "https://evil.test"}
        )
        assert foreign.status_code == 403
        assert "Origin" in foreign.text
        # With both, the request reaches the deployer (which knows no such deployment).
        passed = client.post(target, data={"csrf_token": token.group(1)}, headers=_origin(platform))
        assert passed.status_code == 404, passed.text
    with httpx.Client(base_url=platform.url, timeout=30.0) as anonymous:
        login_csrf = anonymous.post(
            "/console/sign-in", data={"api_key": admin_key}, headers={"Origin": "https://evil.test"}
        )
        assert login_csrf.status_code == 403


def test_a_revoked_key_ends_its_sessions_at_once(platform: Any, http: httpx.Client) -> None:
    key = make_key(platform, TEAM, "short-lived", ["models:read"])
    with _session(platform, key["key"]) as client:
        assert client.get("/console/").status_code == 200
        _ok(http.delete(f"/v1/keys/{key['id']}"), 204)
        after = client.get("/console/")
        assert after.status_code == 303
        assert after.headers["location"].startswith("/console/sign-in?next=")


def test_another_team_sees_none_of_this_teams_models(platform: Any, http: httpx.Client) -> None:
    _ok(http.post("/v1/registry/models", json={"name": "only-ours"}), 201)
    other = make_key(platform, "other-team", "viewer", ["models:read"])
    with _session(platform, other["key"]) as client:
        listing = client.get("/console/")
        assert listing.status_code == 200
        assert "only-ours" not in listing.text
        assert "team <strong>other-team</strong>" in listing.text
        hidden = client.get("/console/models/only-ours")
        assert hidden.status_code == 404
        # Without deploy:write the page offers no deploy form; without admin, no dead letters.
        assert client.get("/console/dead-letters").status_code == 403


def test_the_operators_key_opens_no_session(platform: Any) -> None:
    """The bootstrap key acts for every team; the console shows one team's data."""
    with httpx.Client(base_url=platform.url, timeout=30.0) as client:
        answer = client.post(
            "/console/sign-in", data={"api_key": BOOTSTRAP_KEY}, headers=_origin(platform)
        )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert "sign in with a team" in answer.text


def test_the_keyboard_alone_signs_in_and_moves_around(
    platform: Any, admin_key: str, page: Page
) -> None:
    page.goto(platform.url + "/console/sign-in")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Models")
    # The skip link takes focus past the navigation, to the page's content.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # Focus is visible: a focused control gets an outline of its own.
    page.keyboard.press("Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline


def test_a_dead_letter_is_listed_and_replayed(
    platform: Any, platform_database: str, admin_key: str, page: Page
) -> None:
    # A message the registry could not decode, parked as the embedded bus parks one.
    reason = "undecodable: planted by the console test"
    connection = psycopg2.connect(platform_database)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bus.deliveries (service, routing_key, headers, body, content_type,"
                " message_id, attempt, dead_letter_reason, dead_lettered_at)"
                " VALUES ('registry', 'io.mlplane.image.scanned.v1', '{}', %s,"
                " 'application/json', %s, 5, %s, now()) RETURNING id",
                (b'{"team": "default"}', uuid.uuid4().hex, reason),
            )
            (letter,) = cursor.fetchone()
    finally:
        connection.close()
    sign_in(page, platform.url, admin_key)
    page.goto(platform.url + "/console/dead-letters?service=registry")
    row = page.locator("tr", has_text=reason)
    expect(row).to_be_visible()
    shot(page, "13-dead-letters")
    assert_accessible(page, "dead letters with one")
    row.get_by_role("button", name=f"Replay dead letter {letter}").click()
    expect(page.get_by_role("status").first).to_contain_text("dead letter replayed")
    # Back in the registry's queue at try 1 (it fails again there: still undecodable).
    connection = psycopg2.connect(platform_database)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT attempt, dead_letter_reason FROM bus.deliveries WHERE id = %s", (letter,)
            )
            attempt, now_reason = cursor.fetchone()
    finally:
        connection.close()
    assert attempt == 1
    assert now_reason != reason
