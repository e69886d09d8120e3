"""CSRF protection of the console's form POSTs: two checks, both required.

1. The session's own token (a synchronizer token, 256 random bits kept in the
   session row) must come back in the form's `csrf_token` field (or htmx's
   `X-CSRF-Token` header): another site cannot read it.
2. The request's `Origin` (or, when a browser sends none, `Referer`) must be this
   console's own origin.

The session cookie is also `SameSite=Strict`, so a cross-site POST carries no
session at all; the checks above hold even where that attribute is not honoured.
Sign-in has no session yet: it gets check 2 (a login CSRF needs a cross-site POST).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from mlplane_runtime.errors import Forbidden


def same_origin(origin: str | None, referer: str | None, scheme: str, host: str | None) -> bool:
    """True when `origin` (else `referer`) is `scheme://host`."""
    if host is None:
        return False
    expected = f"{scheme}://{host}".lower()
    if origin:
        return origin.lower() == expected
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return False


def check_origin(origin: str | None, referer: str | None, scheme: str, host: str | None) -> None:
    """Raises Forbidden (403) unless the request comes from this console's own pages."""
    if not same_origin(origin, referer, scheme, host):
        raise Forbidden("the form was not sent from this console (Origin check)")


def check_token(expected: str, presented: str | None) -> None:
    """Raises Forbidden (403) unless `presented` is the session's CSRF token."""
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page")
