"""Schemathesis over each fronted service's part of the platform's OpenAPI document: no
generated request (valid or not, per the document) makes the registry, the builder, the
scanner or the deployer answer 5xx, and every error they answer is problem+json (MLflow's JSON on
the MLflow-compatible API).

The platform is the security tests' dev stack, served on 127.0.0.1 from its own
thread, called over real HTTP; every call carries a genuine identity of team A with
every scope (signed per call), so generated input reaches the handlers rather than
stopping at the identity check (the matrix covers that door). Bounded: `MAX_EXAMPLES`
per operation and generation mode, derandomized.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from .route_table import MLFLOW
from .world import World

MAX_EXAMPLES = 8
PROBLEM_JSON = "application/problem+json"


def _operations(world: World, service: str) -> list[Any]:
    document = world.stack.state.get("openapi")
    if document is None:
        document = httpx.get(f"{world.stack.url}/openapi.json", timeout=30).json()
        world.stack.state["openapi"] = document
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if op.path.startswith(f"/{service}/")]


def _fuzz(world: World, service: str, operation: Any, team: str, failures: list[str]) -> None:
    """Sends `MAX_EXAMPLES` generated requests per generation mode to `operation`,
    adding what went wrong to `failures`."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    mlflow = operation.path.startswith((f"{MLFLOW}/", MLFLOW.replace("/api/", "/ajax-api/")))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def probe(case: Any) -> None:
        answer = case.call(base_url=world.stack.url, headers=world.token(service, team))
        where = f"{case.method} {case.formatted_path} -> {answer.status_code}"
        if answer.status_code >= 500:
            failures.append(f"{where}: {answer.text[:300]}")
        elif answer.status_code >= 400 and not mlflow:
            # schemathesis' responses hold every header as a list of values.
            kind = ",".join(answer.headers.get("content-type", []))
            if kind != PROBLEM_JSON:
                failures.append(f"{where}: an error as {kind!r}: {answer.text[:200]}")

    probe()


# Fuzzed once, on the dev stack: it serves every route prod does, and the local-disk
# artifact routes besides (the prod cases are not collected: see conftest).
@pytest.mark.modes("dev")
@pytest.mark.parametrize("service", ["registry", "builder", "scanner", "deployer"])
def test_no_generated_request_gets_a_server_error(world: World, service: str) -> None:
    operations = _operations(world, service)
    assert operations, f"the platform documents no route of {service}"
    # The deployer's generated policies would replace the rules team A's deployments in
    # the matrix rely on: it is fuzzed as a team of its own.
    team = f"{world.a.team}-fz" if service == "deployer" else world.a.team
    failures: list[str] = []
    for operation in operations:
        _fuzz(world, service, operation, team, failures)
    assert not failures, "\n".join(sorted(set(failures))[:40])
