"""Rate limits on the real Redis (and in process): 429 with Retry-After under a burst."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..conftest import Harness

BURST = 12


async def burst(harness: Harness, token: str, count: int = BURST) -> list[httpx.Response]:
    """`count` requests at once (bounded: one round, no retries)."""
    return list(
        await asyncio.gather(
            *(harness.client.get("/v1/keys", headers=harness.bearer(token)) for _ in range(count))
        )
    )


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


async def test_a_key_past_its_burst_gets_429_with_retry_after(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(key_rate_per_s=0.1, key_burst=3)
    token = await harness.key_token(team, "admin")
    responses = await burst(harness, token)
    assert statuses(responses) == [200] * 3 + [429] * (BURST - 3)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 10
    assert refused.json()["retry_after_s"] == int(retry_after)


async def test_keys_of_one_team_share_the_team_bucket(
    harness_for: Callable[..., Any], team: str, other_team: str
) -> None:
    harness: Harness = await harness_for(
        key_rate_per_s=0.1, key_burst=100, team_rate_per_s=0.1, team_burst=4
    )
    first = await harness.key_token(team, "admin")
    second = await harness.key_token(team, "admin")
    mixed = await asyncio.gather(*(burst(harness, t, 4) for t in (first, second)))
    assert statuses([r for group in mixed for r in group]) == [200] * 4 + [429] * 4
    # Another team has its own bucket.
    theirs = await harness.key_token(other_team, "admin")
    assert statuses(await burst(harness, theirs, 4)) == [200] * 4


async def test_tokens_come_back_with_time(harness_for: Callable[..., Any], team: str) -> None:
    harness: Harness = await harness_for(key_rate_per_s=10, key_burst=1)
    token = await harness.key_token(team, "admin")
    assert statuses(await burst(harness, token, 2)) == [200, 429]
    await asyncio.sleep(0.25)
    assert statuses(await burst(harness, token, 1)) == [200]


async def test_the_in_process_limiter_limits_the_same_way(
    harness_for: Callable[..., Any], team: str, monkeypatch: Any
) -> None:
    monkeypatch.delenv("MLPLANE_REDIS_URL", raising=False)
    harness: Harness = await harness_for(redis_url=None, key_rate_per_s=0.1, key_burst=3)
    assert type(harness.gateway.auth.limiter).__name__ == "InProcessRateLimiter"
    token = await harness.key_token(team, "admin")
    responses = await burst(harness, token)
    assert statuses(responses) == [200] * 3 + [429] * (BURST - 3)
    assert int(next(r for r in responses if r.status_code == 429).headers["retry-after"]) >= 1


async def test_redis_down_fails_open_when_so_configured(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(
        redis_url="redis://127.0.0.1:1/0", rate_limit_fail_open=True, key_burst=1
    )
    token = await harness.key_token(team, "admin")
    # Past the burst too: nothing can count, so nothing is refused.
    assert statuses(await burst(harness, token, 3)) == [200] * 3


async def test_redis_down_fails_closed_when_so_configured(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(
        redis_url="redis://127.0.0.1:1/0", rate_limit_fail_open=False
    )
    response = await harness.client.get("/v1/keys", headers=harness.operator)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


async def test_unauthenticated_requests_spend_no_tokens(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(key_rate_per_s=0.1, key_burst=2)
    token = await harness.key_token(team, "admin")
    wrong = f"mlp_{'a' * 8}_{'b' * 43}"
    for _ in range(5):
        response = await harness.client.get("/v1/keys", headers=harness.bearer(wrong))
        assert response.status_code == 401
    assert statuses(await burst(harness, token, 2)) == [200, 200]


@pytest.mark.parametrize("store", ["redis", "in-process"])
async def test_failed_credentials_from_one_address_are_throttled_with_retry_after(
    harness_for: Callable[..., Any], team: str, store: str
) -> None:
    overrides: dict[str, Any] = {"auth_failure_limit": 3, "auth_failure_window_s": 30}
    if store == "in-process":
        overrides["redis_url"] = None
    harness: Harness = await harness_for(**overrides)
    good = await harness.key_token(team, "models:read")
    wrong = [harness.bearer(f"mlp_zzzzzzzz_{secrets.token_urlsafe(32)}") for _ in range(3)]
    for headers in wrong:
        assert (await harness.client.get("/v1/keys", headers=headers)).status_code == 401
    # Any attempt from there now, a right one included, waits for the window to end.
    for headers in (harness.bearer("another-guess"), harness.bearer(good)):
        refused = await harness.client.get("/v1/keys", headers=headers)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 30


async def test_guesses_at_one_key_id_are_throttled_from_every_address(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(auth_failure_limit=2, auth_failure_window_s=30)
    created = await harness.create_key(team, ["models:read"])
    guess = f"mlp_{created['id']}_{secrets.token_urlsafe(32)}"
    for number in range(3):
        transport = httpx.ASGITransport(app=harness.app, client=(f"10.0.0.{number + 1}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            answer = await c.get("/v1/keys", headers=harness.bearer(guess))
        assert answer.status_code == (401 if number < 2 else 429), number


async def test_a_request_without_credentials_is_not_counted_as_a_failure(
    harness_for: Callable[..., Any], team: str
) -> None:
    harness: Harness = await harness_for(auth_failure_limit=1, auth_failure_window_s=30)
    for _ in range(3):
        assert (await harness.client.get("/v1/keys")).status_code == 401
    assert (await harness.client.get("/v1/keys", headers=harness.operator)).status_code == 200
