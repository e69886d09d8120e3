"""The console's pure logic: cookie attributes, CSRF origin checks, what the pages make
of the services' answers, drift reports shaped for charts, page headers. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from mlplane_gateway.auth.principals import Principal, PrincipalKind, Scope
from mlplane_gateway.console import csrf
from mlplane_gateway.console.assets import ASSETS, asset_url
from mlplane_gateway.console.drift_charts import bin_labels, feature_charts
from mlplane_gateway.console.oidc_login import (
    ConsoleSettings,
    authorization_url,
    code_challenge,
    new_pending,
    seal,
    unseal,
)
from mlplane_gateway.console.pages import CSP, environment
from mlplane_gateway.console.sessions import (
    LIFETIME,
    cookie_is_secure,
    key_id_of,
    new_session_id,
    session_expiry,
    session_hash,
)
from mlplane_gateway.console.views import (
    image_digest,
    lifecycle_steps,
    safe_return_path,
    web_link,
)
from mlplane_runtime.errors import Forbidden


@pytest.mark.parametrize(
    ("scheme", "host", "secure"),
    [
        ("http", "127.0.0.1", False),
        ("http", "localhost", False),
        ("http", "[::1]", False),
        ("http", "::1", False),
        ("https", "127.0.0.1", True),
        ("http", "mlplane.example.com", True),
        ("http", "10.0.0.5", True),
        ("http", None, True),
    ],
)
def test_the_cookie_is_secure_unless_plain_http_on_loopback(
    scheme: str, host: str | None, secure: bool
) -> None:
    assert cookie_is_secure(scheme, host) is secure


def test_session_ids_are_random_and_only_their_hash_is_stored() -> None:
    first, second = new_session_id(), new_session_id()
    assert first != second
    assert len(first) >= 43
    assert session_hash(first) != session_hash(second)
    assert len(session_hash(first)) == 32
    assert first.encode() not in session_hash(first)


def test_a_session_ends_with_its_key() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert session_expiry(now, None) == now + LIFETIME
    soon = now + timedelta(minutes=5)
    assert session_expiry(now, soon) == soon
    assert session_expiry(now, now + timedelta(days=30)) == now + LIFETIME


def test_only_an_api_key_principal_names_a_key() -> None:
    key = Principal(PrincipalKind.API_KEY, "apikey:abcd1234", "t", frozenset({Scope.ADMIN}))
    user = Principal(PrincipalKind.OIDC, "user:alice", "t", frozenset())
    assert key_id_of(key) == "abcd1234"
    assert key_id_of(user) is None


@pytest.mark.parametrize(
    ("origin", "referer", "same"),
    [
        ("http://127.0.0.1:8080", None, True),
        ("HTTP://127.0.0.1:8080", None, True),
        ("http://127.0.0.1:8081", None, False),
        ("https://127.0.0.1:8080", None, False),
        ("null", None, False),
        (None, "http://127.0.0.1:8080/console/scans", True),
        (None, "http://evil.test/console/", False),
        (None, None, False),
        ("http://evil.test", "http://127.0.0.1:8080/console/", False),
    ],
)
def test_a_form_must_come_from_this_origin(
    origin: str | None, referer: str | None, same: bool
) -> None:
    assert csrf.same_origin(origin, referer, "http", "127.0.0.1:8080") is same


def test_the_csrf_token_must_match() -> None:
    csrf.check_token("abc", "abc")
    for presented in (None, "", "abd", "abcd"):
        with pytest.raises(Forbidden):
            csrf.check_token("abc", presented)


def test_lifecycle_steps_follow_the_stage() -> None:
    def done(lifecycle: dict[str, Any]) -> list[str]:
        return [s["name"] for s in lifecycle_steps(lifecycle) if s["done"]]

    assert done({"stage": "registered"}) == ["registered"]
    assert done({"stage": "building"}) == ["registered"]
    assert done({"stage": "build_failed", "build_failure": "no base"}) == ["registered"]
    assert done({"stage": "built"}) == ["registered", "built"]
    assert done({"stage": "scanned", "scan_verdict": "passed"}) == [
        "registered",
        "built",
        "scanned",
    ]
    deployed = {
        "stage": "deployed",
        "deployed_environments": ["dev"],
        "deployments": {"dev": "healthy", "prod": "committed"},
    }
    assert done(deployed) == ["registered", "built", "scanned", "deployed"]
    assert lifecycle_steps(deployed)[3]["note"] == "dev: healthy, prod: committed"


def test_only_http_links_and_own_paths_are_followed() -> None:
    assert web_link("https://ci.example.com/runs/1") == "https://ci.example.com/runs/1"
    assert web_link("javascript:alert(1)") is None
    assert web_link("data:text/html,x") is None
    assert web_link(None) is None
    assert safe_return_path("/console/scans", "/console/") == "/console/scans"
    for hostile in ("//evil.test/console/", "https://evil.test/", "/console\\..", "", None):
        assert safe_return_path(hostile, "/console/") == "/console/"
    assert image_digest("reg/team/m@sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert image_digest("reg/team/m:v1") is None


REPORT_NEW: dict[str, Any] = {
    "window": {"end": "2026-12-02T10:00:00+00:00"},
    "features": [
        {
            "feature": "amount",
            "kind": "numeric",
            "method": "ks",
            "score": 0.4,
            "threshold": 0.1,
            "drifted": True,
            "distribution": {
                "bins": [[0, 10], [10, 20]],
                "reference": [0.7, 0.3],
                "current": [0.2, 0.8],
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
                "categories": ["de", "fr"],
                "reference": [0.5, 0.5],
                "current": [0.5, 0.5],
            },
        },
    ],
}
REPORT_OLD: dict[str, Any] = {
    "window": {"end": "2026-12-01T10:00:00+00:00"},
    "features": [{"feature": "amount", "score": 0.05}],
}


def test_drift_reports_become_a_chart_per_feature() -> None:
    charts = feature_charts([REPORT_NEW, REPORT_OLD])
    assert [c.feature for c in charts] == ["amount", "country"]
    amount = charts[0]
    assert amount.drifted
    assert amount.labels == ["0 to 10", "10 to 20"]
    assert amount.reference == [0.7, 0.3]
    assert amount.current == [0.2, 0.8]
    # Oldest first: the score over time, None where a report did not judge the feature.
    assert amount.times == ["2026-12-01T10:00:00+00:00", "2026-12-02T10:00:00+00:00"]
    assert amount.scores == [0.05, 0.4]
    assert charts[1].scores == [None, 0.01]
    assert charts[1].labels == ["de", "fr"]
    assert feature_charts([]) == []
    assert bin_labels({}) == []


def test_malformed_reports_are_skipped_not_fatal() -> None:
    odd = {"features": [{"feature": 3}, "x", {"feature": "f", "distribution": {"reference": "?"}}]}
    charts = feature_charts([odd])
    assert [c.feature for c in charts] == ["f"]
    assert charts[0].reference == []


def test_pages_load_nothing_inline_and_assets_are_hashed() -> None:
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP
    assert "frame-ancestors 'none'" in CSP
    for name in ("vendor/htmx-2.0.4.min.js", "vendor/chart-4.4.9.umd.js", "console.js"):
        assert name in ASSETS
        assert asset_url(name) == f"/console/static/{ASSETS[name].etag}/{name}"
    # Every template: no inline script (data blocks of type application/json only),
    # no inline style, no inline event handler.
    for name in environment.list_templates():
        source = environment.loader.get_source(environment, name)[0]  # type: ignore[union-attr]
        assert "<script>" not in source, name
        assert "style=" not in source, name
        assert " onclick=" not in source, name
        for tag in source.split("<script")[1:]:
            assert 'src="' in tag.split(">")[0] or 'type="application/json"' in tag, name


def test_autoescaping_keeps_service_text_as_text() -> None:
    html = environment.get_template("error.html").render(
        status=422, title="Invalid", detail="<img src=x onerror=alert(1)>", session=None
    )
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636 appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pending = new_pending("/console/")
    assert 43 <= len(pending.verifier) <= 128
    assert pending.state != new_pending("/console/").state


def test_the_login_in_flight_cookie_is_signed_and_short_lived() -> None:
    secret = b"k" * 32
    pending = new_pending("/console/scans", now=1000.0)
    sealed = seal(pending, secret)
    assert unseal(sealed, secret, now=1001.0) == pending
    assert unseal(sealed, b"o" * 32, now=1001.0) is None
    assert unseal(sealed, secret, now=1000.0 + 601) is None
    body, signature = sealed.split(".")
    assert unseal(body + "x." + signature, secret, now=1001.0) is None
    for broken in (None, "", "a.b.c", "x" * 3000, "abc"):
        assert unseal(broken, secret, now=1001.0) is None


def test_the_authorization_url_asks_for_a_code_with_s256() -> None:
    settings = ConsoleSettings(
        oidc_client_id="console",
        oidc_authorization_url="https://idp.example/auth?realm=x",
        oidc_token_url="https://idp.example/token",
    )
    pending = new_pending("/console/")
    url = authorization_url(settings, pending, "http://127.0.0.1:8080/console/oidc/callback")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://idp.example/auth?realm=x&")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [code_challenge(pending.verifier)]
    assert query["state"] == [pending.state]
    assert pending.verifier not in url
    assert ConsoleSettings().oidc_ready() is False
