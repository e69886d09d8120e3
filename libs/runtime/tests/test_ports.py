"""Each service's default port, and the launcher's layout around a gateway port."""

from __future__ import annotations

from mlplane_runtime.platform.ports import default_port, port_layout


def test_each_platform_service_has_its_own_default_port() -> None:
    names = ["gateway", "registry", "builder", "scanner", "deployer", "drift"]
    ports = [default_port(name) for name in names]
    assert ports == [8080, 8081, 8082, 8083, 8084, 8085]


def test_an_unknown_service_is_left_to_its_operator() -> None:
    assert default_port("forecasting") == 8080


def test_layout_follows_the_gateway_port_and_places_unknown_services_after() -> None:
    layout = port_layout(["builder", "extra", "gateway", "registry", "other"], 9000)
    assert layout == {
        "gateway": 9000,
        "registry": 9001,
        "builder": 9002,
        "extra": 9006,
        "other": 9007,
    }
