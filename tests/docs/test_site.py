"""The documentation site builds with `mkdocs build --strict`, as `make docs` builds it.

Strict mode turns every warning into a failure: a link to a page or an anchor that
does not exist, a page left out of the navigation, a README snippet that moved. The
hook's generated reference pages are checked to be there, with every installed
service's routes, and the site to load nothing from another host.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import mlplane_contracts.events  # noqa: F401  (importing it registers every payload)
import pytest
from mlplane_contracts.events import PUBLISHED_PAYLOADS

from .conftest import REPO

MKDOCS = REPO / ".venv" / "bin" / "mkdocs"
BUILD_WITHIN_S = 240


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=BUILD_WITHIN_S,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", "", page.read_text())


def test_every_service_has_its_api_reference(site: Path) -> None:
    deployer = _text(site / "reference" / "openapi-deployer" / "index.html")
    assert "POST /deployments" in deployer
    assert "RulesModel" in deployer
    drift = _text(site / "reference" / "openapi-drift" / "index.html")
    assert "POST /samples" in drift
    gateway = _text(site / "reference" / "openapi-gateway" / "index.html")
    assert "Scope: admin" in gateway  # the gateway's x-mlplane-scope, per route
    for service in ("registry", "builder", "scanner"):
        assert (site / "reference" / f"openapi-{service}" / "index.html").exists()


def test_the_events_reference_lists_every_event_type(site: Path) -> None:
    page = _text(site / "reference" / "asyncapi" / "index.html")
    # The contracts' published types, not the process's registry: tests elsewhere in the
    # session register types of their own there.
    event_types = list(PUBLISHED_PAYLOADS)
    assert event_types
    for event_type in event_types:
        assert event_type in page, event_type


def test_the_getting_started_page_is_the_readme_walkthrough(site: Path) -> None:
    page = _text(site / "getting-started" / "index.html")
    assert "mlplane deploy fraud --version 1 --env dev" in page
    assert "--8&lt;--" not in page


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    for page in site.rglob("*.html"):
        head = page.read_text().split("</head>", 1)[0]
        assert not re.search(r"""(?:src|href)=["']https?://""", head), page
