"""The authorization code exchanged for the access token at the IdP's token endpoint."""

from __future__ import annotations

from typing import Final

import httpx

from mlplane_gateway.console.backend import ServiceError
from mlplane_gateway.console.oidc_login import ConsoleSettings

TIMEOUT_S: Final = 10.0
MAX_TOKEN_ANSWER_BYTES: Final = 64 * 1024


async def exchange_code(
    settings: ConsoleSettings, code: str, verifier: str, redirect_uri: str
) -> str:
    """The access token the IdP gives for `code` and the PKCE `verifier`. Raises
    ServiceError (502) when the IdP cannot be reached or gives no token; its answer's
    body is never shown (it may hold secrets)."""
    assert settings.oidc_token_url is not None
    assert settings.oidc_client_id is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": settings.oidc_client_id,
        "code_verifier": verifier,
    }
    if settings.oidc_client_secret is not None:
        form["client_secret"] = settings.oidc_client_secret.get_secret_value()
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT_S, trust_env=False, follow_redirects=False
        ) as client:
            answer = await client.post(
                str(settings.oidc_token_url), data=form, headers={"Accept": "application/json"}
            )
    except httpx.HTTPError:
        raise ServiceError(
            502, "Bad gateway", "the identity provider could not be reached", "oidc"
        ) from None
    if answer.status_code != 200 or len(answer.content) > MAX_TOKEN_ANSWER_BYTES:
        raise ServiceError(
            502,
            "Bad gateway",
            f"the identity provider gave no token (status {answer.status_code})",
            "oidc",
        )
    try:
        token = answer.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token or len(token) > 16 * 1024:
        raise ServiceError(502, "Bad gateway", "the identity provider gave no token", "oidc")
    return token
