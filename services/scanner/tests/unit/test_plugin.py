"""The scanner plug-in: its schema and migrations, and the events it consumes."""

from __future__ import annotations

from mlplane_contracts import events as ev
from mlplane_scanner.handlers import event_handlers
from mlplane_scanner.main import make_plugin, plugin


def test_the_entry_point_plugin_uses_the_scanner_schema_and_its_migrations() -> None:
    assert (plugin.name, plugin.schema, plugin.metadata.schema) == ("scanner", "scanner", "scanner")
    assert plugin.migrations is not None
    assert (plugin.migrations / "env.py").is_file()


def test_a_plugin_can_live_in_another_schema() -> None:
    other = make_plugin("scanner2", "t_scanner2")
    assert {t.schema for t in other.metadata.tables.values()} == {"t_scanner2"}


def test_it_consumes_built_images_and_deployment_changes() -> None:
    handlers = event_handlers(lambda uow: None)  # type: ignore[arg-type,return-value]
    assert set(handlers) == {ev.IMAGE_BUILT, ev.DEPLOYMENT_STATUS_CHANGED}
