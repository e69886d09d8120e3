"""MLflow's `test webhook`: one example delivery sent now, its answer reported back."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from mlplane_gateway.subscriptions.delivery import USER_AGENT, pinned_request
from mlplane_gateway.subscriptions.domain import InvalidSink, Subscription
from mlplane_gateway.subscriptions.mlflow import body_of, example_data, signed
from mlplane_gateway.subscriptions.service import SinkCheck

MAX_RESPONSE_CHARS = 1000


@dataclass(frozen=True, slots=True)
class TestResult:
    success: bool
    response_status: int | None
    response_body: str | None
    error_message: str | None


async def send_test(
    client: httpx.AsyncClient,
    webhook: Subscription,
    mlflow_event: str,
    check_sink: SinkCheck,
    timeout_s: float,
) -> TestResult:
    """POST an example `mlflow_event` to the webhook's URL, signed with its secret.

    Never raises for what the sink or network does: the result says it.
    """
    try:
        checked = await check_sink(webhook.sink_url)
    except InvalidSink as exc:
        return TestResult(False, None, None, f"the URL may not be called: {exc.detail}")
    body = body_of(mlflow_event, example_data(mlflow_event), datetime.now(UTC))
    headers = {
        **signed(webhook.secret, f"test-{secrets.token_hex(8)}", int(time.time()), body),
        "User-Agent": USER_AGENT,
    }
    url, extensions = pinned_request(webhook.sink_url, checked, headers)
    try:
        async with asyncio.timeout(timeout_s):
            answer = await client.post(url, headers=headers, content=body, extensions=extensions)
    except TimeoutError:
        return TestResult(False, None, None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return TestResult(False, None, None, f"{type(exc).__name__}: {exc}")
    text = answer.text[:MAX_RESPONSE_CHARS]
    ok = 200 <= answer.status_code < 300
    return TestResult(ok, answer.status_code, text, None if ok else f"HTTP {answer.status_code}")
