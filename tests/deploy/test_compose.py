"""docker-compose.yml: valid under the Compose Specification, and the stack it describes.

No Docker engine runs here. The file is validated against the Compose Specification's
JSON schema kept in docker/compose/schema, the stack's shape is checked (every service
health-checked, started after the migrations job, scraped by Prometheus), and the
Prometheus configuration goes through the real `promtool check config`.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import REPO, SERVICES

COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO / "docker" / "compose" / "schema" / "compose-spec.json"
PROMETHEUS_CONFIG = REPO / "docker" / "compose" / "prometheus.yml"
INFRASTRUCTURE = (
    "postgres",
    "rabbitmq",
    "redis",
    "minio",
    "oci-registry",
    "prometheus",
    "grafana",
    "loki",
    "tempo",
)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # merge keys resolved
    return loaded


def _validator() -> jsonschema.Validator:
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "registry", "depends_on", "postgres", "condition"), "service_ready"),
        (("services", "gateway", "healthcheck", "interval"), 10),
        (("services", "registry", "restart_policy"), "always"),
    ],
)
def test_the_schema_refuses_what_compose_would(path: tuple[str, ...], value: object) -> None:
    # The same validator, given a broken copy: the check above can fail.
    broken = copy.deepcopy(compose())
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(_validator().iter_errors(broken))


def test_the_stack_has_its_infrastructure_and_every_service_health_checked() -> None:
    services = compose()["services"]
    for name in INFRASTRUCTURE:
        assert name in services, name
    assert "15672:15672" in " ".join(services["rabbitmq"]["ports"])  # management UI
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["build"]["target"] == "migrate"
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["serve", name]
        assert service["build"]["target"] == name
        assert service["read_only"] is True
        assert service["user"] == "10001:10001"
        assert "/tmp" in service["tmpfs"]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        depends = service["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["rabbitmq"] == {"condition": "service_healthy"}
        environment = service["environment"]
        assert environment["MLPLANE_OTLP_ENDPOINT"] == "http://tempo:4318"
        assert environment["MLPLANE_HTTP_HOST"] == "0.0.0.0"
        # Each volume mount is the service's data directory and nothing else.
        assert service["volumes"] == [f"{name}-data:/var/lib/mlplane"]
    gateway = services["gateway"]
    for name in SERVICES:
        if name != "gateway":
            assert gateway["depends_on"][name] == {"condition": "service_healthy"}
            port = services[name]["environment"]["MLPLANE_HTTP_PORT"]
            url = gateway["environment"][f"MLPLANE_GATEWAY_{name.upper()}_URL"]
            assert url == f"http://{name}:{port}"


def test_prometheus_scrapes_every_service_and_grafana_is_provisioned() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    services = compose()["services"]
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    }
    for name in SERVICES:
        port = services[name]["environment"]["MLPLANE_HTTP_PORT"]
        assert f"{name}:{port}" in targets, name
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards:" in grafana_mounts
    assert "./docker/compose/grafana/provisioning:" in grafana_mounts
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "./deploy/prometheus/rules:/etc/prometheus/rules" in prometheus_mounts
    # Every file the compose file mounts from the repository exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source


def test_promtool_accepts_the_prometheus_configuration(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/ensure-tools.sh installs it"
    # The rule files at the path the container mounts them, here under tmp_path.
    shutil.copytree(REPO / "deploy" / "prometheus" / "rules", tmp_path / "rules")
    text = PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/rules", str(tmp_path / "rules"))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    done = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
