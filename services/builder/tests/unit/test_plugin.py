"""The builder plug-in: the event types the bus topology binds to it, its schema and
its migrations."""

from __future__ import annotations

from mlplane_builder.handlers import event_handlers
from mlplane_builder.main import make_plugin, plugin
from mlplane_builder.store import define_tables
from mlplane_contracts.topology import CONSUMES


def test_handlers_cover_the_builder_bindings_exactly() -> None:
    assert set(event_handlers(define_tables("builder"))) == set(CONSUMES["builder"])


def test_the_entry_point_plugin_uses_the_builder_schema_and_its_migrations() -> None:
    assert (plugin.name, plugin.schema, plugin.metadata.schema) == ("builder", "builder", "builder")
    assert plugin.migrations is not None
    assert (plugin.migrations / "env.py").is_file()


def test_a_plugin_can_live_in_another_schema() -> None:
    other = make_plugin("builder2", "t_builder2")
    assert {t.schema for t in other.metadata.tables.values()} == {"t_builder2"}
