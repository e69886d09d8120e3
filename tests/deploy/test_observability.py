"""Alert rules (promtool check and unit tests) and Grafana dashboards (metrics that exist).

Every metric an alert or a panel reads is one the platform's code defines, or a
series of `up`; the alert rules also read two exporters the deployment runs beside
mlplane (RabbitMQ's per-queue metrics, Argo CD's application info), named here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, SERVICES, code_metric_names, promql_metric_names

RULES = REPO / "deploy" / "prometheus" / "rules" / "mlplane.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "tests"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
PROMETHEUS_BUILTIN = {"up"}
EXPORTERS = {
    "rabbitmq_queue_messages_ready": "RabbitMQ rabbitmq_prometheus, /metrics/per-object",
    "argocd_app_info": "Argo CD application controller",
}
ALERTS = {
    "MlplaneOutboxStuck",
    "MlplaneDeadLetters",
    "MlplaneDeadLettersGrowing",
    "MlplaneConsumerLag",
    "MlplaneScanErrors",
    "MlplaneDeploymentDegraded",
    "MlplaneDriftDetected",
    "MlplaneServiceDown",
}


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/ensure-tools.sh installs it"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tests = sorted(RULE_TESTS.glob("*.yml"))
    assert tests
    done = _promtool("test", "rules", *map(str, tests), cwd=RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    # Every alert has a test that expects it to fire.
    tested = {
        case["alertname"]
        for test in tests
        for group in yaml.safe_load(test.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == ALERTS


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    # The same tests expecting the outbox alert a minute before its `for:` has passed.
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / RULES.name)
    text = (RULE_TESTS / "mlplane.test.yml").read_text()
    (tmp_path / "tests").mkdir()
    wrong = text.replace("      - eval_time: 4m\n", "      - eval_time: 4m\n        # wrong\n")
    wrong = wrong.replace(
        "      - eval_time: 8m\n        alertname: MlplaneOutboxStuck",
        "      - eval_time: 6m\n        alertname: MlplaneOutboxStuck",
    )
    assert wrong != text
    (tmp_path / "tests" / "wrong.yml").write_text(wrong)
    done = _promtool("test", "rules", "wrong.yml", cwd=tmp_path / "tests")
    assert done.returncode == 1
    assert "MlplaneOutboxStuck" in done.stdout + done.stderr


def test_every_alert_reads_metrics_that_exist() -> None:
    known = code_metric_names() | PROMETHEUS_BUILTIN | set(EXPORTERS)
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)


def test_the_metric_name_extraction_sees_every_name() -> None:
    expr = (
        'sum by (le, service) (rate(a_b_bucket{service="x",q=~"y|z"}[5m])) '
        "/ ignoring(le) max(c_total offset 5m) > 0.5 and on (service) up"
    )
    assert promql_metric_names(expr) == {"a_b_bucket", "c_total", "up"}


def _dashboards() -> dict[str, dict[str, object]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def test_one_dashboard_per_service_and_one_for_the_journey() -> None:
    names = set(_dashboards())
    assert names == {f"mlplane-{s}" for s in SERVICES} | {"mlplane-journey"}


@pytest.mark.parametrize("name", [f"mlplane-{s}" for s in SERVICES] + ["mlplane-journey"])
def test_each_panel_queries_metrics_the_code_defines(name: str) -> None:
    dashboard = _dashboards()[name]
    known = code_metric_names() | PROMETHEUS_BUILTIN
    assert dashboard["uid"] == name
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        targets = panel["targets"]
        assert targets, panel["title"]
        for target in targets:
            # The datasource provisioned by docker/compose/grafana/provisioning.
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            names = promql_metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert names <= known, (panel["title"], names - known)
    service = name.removeprefix("mlplane-")
    if service in SERVICES:
        # A service's dashboard is about that service.
        exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
        assert f'service="{service}"' in exprs
