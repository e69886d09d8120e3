"""The registry plug-in consumes exactly the event types the bus topology binds to it."""

from __future__ import annotations

from mlplane_contracts.topology import CONSUMES
from mlplane_registry.handlers import event_handlers
from mlplane_registry.main import make_plugin, plugin
from mlplane_registry.store import define_tables


def test_handlers_cover_the_registry_bindings_exactly() -> None:
    assert set(event_handlers(define_tables("registry"))) == set(CONSUMES["registry"])


def test_the_entry_point_plugin_uses_the_registry_schema_and_its_migrations() -> None:
    assert (plugin.name, plugin.schema, plugin.metadata.schema) == (
        "registry",
        "registry",
        "registry",
    )
    assert plugin.migrations is not None
    assert (plugin.migrations / "env.py").is_file()


def test_a_plugin_can_live_in_another_schema() -> None:
    other = make_plugin("registry2", "t_registry2")
    assert other.metadata.schema == "t_registry2"
    assert {t.schema for t in other.metadata.tables.values()} == {"t_registry2"}
