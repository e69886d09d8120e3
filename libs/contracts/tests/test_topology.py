"""The bus topology names what DESIGN.md describes, and nothing drifts out of it."""

from __future__ import annotations

import pytest
from mlplane_contracts.events import INTAKE_PAYLOADS, PLATFORM_PAYLOADS, PUBLISHED_PAYLOADS
from mlplane_contracts.topology import (
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    CONSUMES,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    EXCHANGE,
    EXTERNAL_PRODUCERS,
    ORIGINAL_ROUTING_KEY_HEADER,
    PRODUCED_BY,
    SERVICES,
    bindings,
    consumers_of,
    dead_letter_queue_name,
    queue_name,
    retry_queue_name,
    source_of,
)


def test_exchanges_and_queue_names_follow_the_design() -> None:
    assert EXCHANGE == "mlplane.events"
    assert DEAD_LETTER_EXCHANGE == "mlplane.dlx"
    assert queue_name("registry") == "mlplane.registry"
    assert dead_letter_queue_name("registry") == "mlplane.registry.dlq"
    assert retry_queue_name("registry", 3) == "mlplane.registry.retry.3"
    assert source_of("scanner") == "/mlplane/scanner"


def test_retry_and_dead_letter_header_names_are_fixed() -> None:
    assert (ATTEMPT_HEADER, ATTEMPTS_HEADER, ERROR_HEADER) == (
        "x-mlplane-attempt",
        "x-mlplane-attempts",
        "x-mlplane-error",
    )
    assert DEAD_LETTERED_AT_HEADER == "x-mlplane-dead-lettered-at"
    assert ORIGINAL_ROUTING_KEY_HEADER == "x-mlplane-original-routing-key"


def test_each_service_consumes_what_the_design_table_says() -> None:
    def short(types: tuple[str, ...]) -> set[str]:
        return {t.removeprefix("io.mlplane.").removesuffix(".v1") for t in types}

    assert short(CONSUMES["registry"]) == {
        "ci.run.completed",
        "image.build_started",
        "image.built",
        "image.build_failed",
        "image.scanned",
        "deployment.status_changed",
    }
    assert short(CONSUMES["builder"]) == {"model.version.registered"}
    assert short(CONSUMES["scanner"]) == {"image.built", "deployment.status_changed"}
    assert short(CONSUMES["deployer"]) == {
        "model.version.registered",
        "image.built",
        "image.scanned",
        "deployment.requested",
        "model.alias.changed",
        "drift.detected",
    }
    assert short(CONSUMES["drift"]) == {"model.version.registered", "drift.samples"}
    assert short(CONSUMES["gateway"]) == {
        "deployment.status_changed",
        "model.alias.changed",
        "drift.detected",
        "image.scanned",
    }


def test_every_event_type_has_one_producer_and_at_least_one_consumer() -> None:
    for event_type in PLATFORM_PAYLOADS:
        assert PRODUCED_BY[event_type] in SERVICES
        assert consumers_of(event_type), event_type
    assert set(PRODUCED_BY) == set(PLATFORM_PAYLOADS)


def test_intake_types_come_from_outside_the_platform_and_are_consumed() -> None:
    assert set(EXTERNAL_PRODUCERS) == set(INTAKE_PAYLOADS)
    assert not set(INTAKE_PAYLOADS) & set(PLATFORM_PAYLOADS)
    for event_type in INTAKE_PAYLOADS:
        assert event_type not in PRODUCED_BY
        assert consumers_of(event_type) == ("drift",)


def test_only_published_types_are_bound() -> None:
    assert set(CONSUMES) <= set(SERVICES)
    for service in SERVICES:
        assert set(bindings(service)) <= set(PUBLISHED_PAYLOADS)


def test_consumers_of_lists_the_services_bound_to_a_type() -> None:
    assert consumers_of("io.mlplane.model.version.registered.v1") == (
        "builder",
        "deployer",
        "drift",
    )
    assert consumers_of("io.mlplane.unknown.v1") == ()


def test_a_service_that_consumes_nothing_has_no_bindings() -> None:
    assert bindings("bench-raw") == ()


@pytest.mark.parametrize("service", ["", "Registry", "reg.istry", "reg istry", "-x", "é"])
def test_invalid_service_names_are_refused(service: str) -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        queue_name(service)


def test_retry_levels_count_from_one() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        retry_queue_name("registry", 0)
