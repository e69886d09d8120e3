"""Rendering the console's pages and their response headers (CSP and the rest).

The Content-Security-Policy allows scripts, styles, images and connections from the
gateway itself only: no inline script or style, no eval (htmx is configured not to
use it), no framing, forms posting only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from mlplane_runtime.errors import InvalidInput
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mlplane_gateway.console.assets import asset_url

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FIELD_CHARS: Final = 2048

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals["asset"] = asset_url


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """`template` with `context` (and the request) as a page that is never cached."""
    html = environment.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


async def form_fields(request: Request) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each); InvalidInput (422) for
    another media type, a body over `MAX_FORM_BYTES` or a field over `MAX_FIELD_CHARS`."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidInput("send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInput(f"a form is at most {MAX_FORM_BYTES} bytes")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8") from None
    fields = {name: values[0] for name, values in parsed.items() if values}
    for name, value in fields.items():
        if len(value) > MAX_FIELD_CHARS:
            raise InvalidInput(f"the field {name} is at most {MAX_FIELD_CHARS} characters")
    return fields
