"""The deployer plugs in like every service: an entry point, its own schema, its handlers."""

from __future__ import annotations

from importlib.metadata import entry_points

from mlplane_contracts import events as ev
from mlplane_contracts.topology import CONSUMES
from mlplane_deployer.handlers import event_handlers
from mlplane_deployer.main import plugin


def test_the_deployer_is_an_installed_service_plugin() -> None:
    [found] = [e for e in entry_points(group="mlplane.services") if e.name == "deployer"]
    assert found.value == "mlplane_deployer.main:plugin"
    assert (plugin.name, plugin.schema) == ("deployer", "deployer")
    assert plugin.migrations is not None
    assert plugin.migrations.is_dir()


def test_it_handles_exactly_what_its_queue_is_bound_to() -> None:
    handled = set(event_handlers(lambda uow: None))  # type: ignore[arg-type,return-value]
    assert handled == set(CONSUMES["deployer"])
    assert ev.DRIFT_DETECTED in handled
