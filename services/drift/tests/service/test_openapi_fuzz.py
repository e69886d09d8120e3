"""Schemathesis over the drift service's OpenAPI document: no generated request (valid or
not, per the document) makes it answer 5xx, and every error it answers is problem+json.

Generated first (hypothesis, derandomized, `MAX_EXAMPLES` per operation and mode), then
sent to the service's app on the test's own event loop, with a genuine identity of the
team that owns a version, a reference and a report, so input reaches the handlers.
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_contracts.scopes import ALL_SCOPES
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import signed_identity
from schemathesis import GenerationMode

from .conftest import Hosted, as_, body
from .support.data import table

MAX_EXAMPLES = 8
PROBLEM = "application/problem+json"


def _cases(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document)
    cases: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def collect(case: Any) -> None:
            cases.append(case)

        collect()
    return cases


async def test_no_generated_request_gets_a_server_error(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(2000, seed=1))
    await hosted.post(team, body(table(1000, seed=2, shift=2.0)))
    await hosted.judge()
    document = (await hosted.http.get("/openapi.json")).json()
    cases = _cases(document)
    assert len(cases) > 20
    failures: list[str] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(transport=hosted.transport, base_url="http://drift.test") as raw:
        for case in cases:
            kwargs = case.as_transport_kwargs(base_url="http://drift.test")
            headers = {
                **{k: str(v) for k, v in (kwargs.pop("headers", None) or {}).items()},
                **as_(team),
                IDENTITY_HEADER: signed_identity("drift", team=team, scopes=ALL_SCOPES),
            }
            for unsupported in ("cookies", "timeout", "allow_redirects", "verify"):
                kwargs.pop(unsupported, None)
            if isinstance(kwargs.get("data"), bytes | str):
                kwargs["content"] = kwargs.pop("data")
            answer = await raw.request(headers=headers, **kwargs)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            where = f"{case.method} {case.formatted_path} -> {answer.status_code}"
            if answer.status_code >= 500:
                failures.append(f"{where}: {answer.text[:300]}")
            elif answer.status_code >= 400 and case.method != "HEAD":
                kind = answer.headers.get("content-type", "")
                if kind != PROBLEM:
                    failures.append(f"{where}: an error as {kind!r}: {answer.text[:200]}")
    assert not failures, "\n".join(sorted(set(failures))[:40])
    assert any(200 <= status < 300 for status in statuses), statuses  # input got through
    assert statuses.get(401, 0) == 0, statuses  # every case carried a genuine identity
