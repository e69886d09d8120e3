"""The OpenAPI documents: valid for the platform as served and for each service as it
is built alone (`mlplane serve <service>`), and schemathesis over the APIs no other
suite fuzzes finds no 5xx.

Who fuzzes what (so nothing is fuzzed twice): the registry, builder and scanner are
fuzzed on the security tests' platform (tests/security/test_service_openapi_fuzz.py),
the gateway's own API in its tests (services/gateway/tests/integration/
test_openapi_fuzz.py); the deployer, and drift once installed, here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_contracts.scopes import ALL_SCOPES
from mlplane_contracts.topology import SERVICES
from mlplane_runtime.db import create_database
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.database import database_url_from_env
from mlplane_testing.identity import signed_identity
from mlplane_testing.service import service_app, service_context
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from .flow import ENVIRONMENT
from .hosting import Served, installed_services, only_environment, plugin_in_schema, served_platform
from .pending import NotInstalled, pending_marks

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 25
PROBLEM_JSON = "application/problem+json"
FUZZED_HERE = ("deployer", "drift")
FUZZED_ELSEWHERE = {
    "registry": "tests/security/test_service_openapi_fuzz.py",
    "builder": "tests/security/test_service_openapi_fuzz.py",
    "scanner": "tests/security/test_service_openapi_fuzz.py",
    "gateway": "services/gateway/tests/integration/test_openapi_fuzz.py",
}


def _per_service(services: tuple[str, ...]) -> list[Any]:
    return [pytest.param(service, marks=pending_marks(None, (service,))) for service in services]


def _module_of(service: str) -> str:
    installed = installed_services()
    if service not in installed:
        raise NotInstalled(
            f"{service} is not installed (installed: {', '.join(sorted(installed))})"
        )
    return installed[service]


# Module-scoped: the platform (and its database connections) is gone once this module's
# tests are done, not kept until the end of the whole run.
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Every installed service in one platform, over HTTP on 127.0.0.1."""
    data_dir = tmp_path_factory.mktemp("contract-openapi")
    with served_platform(database_url_from_env(), data_dir, ENVIRONMENT) as platform:
        yield platform


@pytest.fixture(scope="module")
def platform_document(served: Served) -> dict[str, Any]:
    answer = httpx.get(f"{served.url}/openapi.json", timeout=30)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_the_platform_document_is_valid(platform_document: dict[str, Any]) -> None:
    _valid(platform_document)
    prefixes = {path.split("/")[1] for path in platform_document["paths"]}
    for service in installed_services():
        # The gateway's public API lives under /v1; every other service under its name.
        assert ("v1" if service == "gateway" else service) in prefixes, sorted(prefixes)


@pytest.mark.parametrize("service", _per_service(SERVICES))
def test_the_service_document_is_valid(service: str, tmp_path: Path) -> None:
    """The document of the service built alone, as `mlplane serve <service>` builds it."""
    module = _module_of(service)
    database = create_database(database_url_from_env())  # connects to nothing here
    plugin = plugin_in_schema(module, f"t_con_doc_{uuid.uuid4().hex[:8]}")
    context = service_context(service, database, plugin.messaging(), data_dir=tmp_path)
    with only_environment(ENVIRONMENT):
        app = service_app(context, plugin.parts_for(context))
    document = app.openapi()
    _valid(document)
    assert document["paths"], f"{service} documents no route"


@pytest.mark.parametrize("service", _per_service(FUZZED_HERE))
def test_no_generated_request_gets_a_server_error(
    served: Served, platform_document: dict[str, Any], service: str
) -> None:
    _module_of(service)
    schema = schemathesis.openapi.from_dict(platform_document)
    # Each result is Ok(operation), or Err when schemathesis cannot read an operation.
    results: list[Any] = list(schema.get_all_operations())
    operations = [op for op in (r.ok() for r in results) if op.path.startswith(f"/{service}/")]
    assert operations, f"the platform documents no route of {service}"
    team = f"fz-{uuid.uuid4().hex[:6]}"
    failures: list[str] = []
    for operation in operations:
        _fuzz(served.url, service, team, operation, failures)
    assert not failures, "\n".join(sorted(set(failures))[:40])


def test_every_service_api_is_fuzzed_by_some_suite() -> None:
    assert set(SERVICES) == set(FUZZED_HERE) | set(FUZZED_ELSEWHERE)
    for service, path in FUZZED_ELSEWHERE.items():
        text = (REPO / path).read_text()
        assert "schemathesis" in text, path
        assert service == "gateway" or f'"{service}"' in text, (service, path)


def _valid(document: Any) -> None:
    """Raises (naming the first problem) unless `document` is a valid OpenAPI document."""
    validate(document)


def _fuzz(url: str, service: str, team: str, operation: Any, failures: list[str]) -> None:
    """`MAX_EXAMPLES` generated requests (valid and invalid per the document) to
    `operation`, each with a genuine identity of `team` with every scope (so input
    reaches the handlers); what went wrong is added to `failures`."""
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
    def probe(case: Any) -> None:
        identity = signed_identity(service, team=team, scopes=ALL_SCOPES)
        answer = case.call(base_url=url, headers={IDENTITY_HEADER: identity})
        where = f"{case.method} {case.formatted_path} -> {answer.status_code}"
        if answer.status_code >= 500:
            failures.append(f"{where}: {answer.text[:300]}")
        elif answer.status_code >= 400:
            kind = ",".join(answer.headers.get("content-type", []))
            if kind != PROBLEM_JSON:
                failures.append(f"{where}: an error as {kind!r}: {answer.text[:200]}")

    probe()
