"""The console's browser tests: a real `mlplane up` (as `make run` starts it, see
`tests/e2e/conftest.py`, whose fixtures are reused here) and Debian's chromium driven
by Playwright for Python.

Chromium comes from `scripts/ensure-browser.sh` (`make test` runs it through `make
services`); Playwright's own browser download cannot run here, so the browser is
launched from `/usr/bin/chromium`. Screenshots go to `tests/console/artifacts/`
(gitignored). axe-core (vendored in `vendor/`) is evaluated in the page for the
accessibility checks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
AXE = HERE / "vendor" / "axe-4.10.3.min.js"
CHROMIUM = Path(os.environ.get("MLPLANE_TEST_CHROMIUM", "/usr/bin/chromium"))
SERIOUS = ("serious", "critical")

# The e2e suite's `mlplane up` fixtures, loaded by path (tests are not a package).
_spec = importlib.util.spec_from_file_location("_e2e_conftest", HERE.parent / "e2e" / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
e2e = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = e2e  # dataclasses look their module up there
_spec.loader.exec_module(e2e)

platform_database = e2e.platform_database
RunningPlatform = e2e.RunningPlatform


BOOTSTRAP_KEY = "console-test-bootstrap-key-0123456789abcdef0123"
"""The operator's key: it makes the teams' keys (two teams are needed here)."""
ALL_SCOPES = [
    "models:read",
    "models:write",
    "deploy:write",
    "deploy:approve",
    "events:publish",
    "events:subscribe",
    "admin",
]


@pytest.fixture(scope="module")
def platform(platform_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`mlplane up` on embedded defaults and an operator key, ready; stopped with SIGTERM
    (and checked) after."""
    yield from e2e.running_platform(
        platform_database,
        tmp_path_factory,
        {"MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY},
    )


def make_key(platform: Any, team: str, name: str, scopes: list[str]) -> dict[str, Any]:
    """A new API key of `team` (made with the operator's key): `key` and `id`."""
    answer = httpx.post(
        platform.url + "/v1/keys",
        json={"team": team, "name": name, "scopes": scopes},
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        timeout=30.0,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


@pytest.fixture(scope="module")
def admin_key(platform: Any) -> str:
    """A key of team `default` with every scope, as `make run`'s initial admin key."""
    return str(make_key(platform, "default", "admin", ALL_SCOPES)["key"])


@pytest.fixture(scope="module")
def http(platform: Any, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30.0,
    ) as client:
        yield client


# Per module, not per session: while Playwright's sync API is open its event loop runs
# in this thread, and every later test that starts a loop of its own (asyncio.run,
# pytest-asyncio) would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/ensure-browser.sh (make services)")
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) on a laptop-sized screen, failing the test
    on any Content-Security-Policy violation or script error it reports."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            # An error page's own status is logged as "Failed to load resource";
            # CSP refusals and script errors are not.
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield opened
    context.close()
    assert not problems, "\n".join(problems)


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot under `tests/console/artifacts/`."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now.

    axe is evaluated through the DevTools protocol, not added as a script tag: the
    page's CSP (rightly) refuses inline scripts.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result: dict[str, Any] = page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in result["violations"]
        if violation["impact"] in SERIOUS
    ]


def assert_accessible(page: Page, name: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{name}: " + json.dumps(violations, indent=1)


def sign_in(page: Page, base_url: str, key: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/$"))
