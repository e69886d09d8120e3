"""Media types a request body may be declared as."""

from __future__ import annotations


def is_json_media_type(content_type: str | None) -> bool:
    """True for `application/json` and `application/<x>+json` (parameters ignored).

    Routes that read a raw body check this before parsing it as JSON: a browser's
    cross-site form or `text/plain` post (sent without a CORS preflight) is never
    JSON, so it can never change anything.
    """
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))
