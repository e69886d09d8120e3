"""`mlplane migrate`: the one-shot migrations job of compose and Kubernetes, on real PostgreSQL."""

from __future__ import annotations

import subprocess

from mlplane_runtime.service import discover_services

from .conftest import MLPLANE, admin_sql, clean_environment


def _migrate(url: str | None, *services: str) -> subprocess.CompletedProcess[str]:
    extra = {"MLPLANE_DATABASE_URL": url} if url else {}
    return subprocess.run(
        [str(MLPLANE), "migrate", *services],
        env=clean_environment(MLPLANE_ENV="test", **extra),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _heads(name: str, schemas: list[str]) -> dict[str, str]:
    heads = {}
    for schema in schemas:
        rows = admin_sql(f'SELECT version_num FROM "{schema}".alembic_version', database=name)
        heads[schema] = str(rows[0][0])
    return heads


def test_migrate_brings_every_installed_service_to_head_and_is_idempotent(
    database: tuple[str, str],
) -> None:
    name, url = database
    plugins = discover_services()
    first = _migrate(url)
    assert first.returncode == 0, first.stderr
    for plugin in plugins:
        assert f"migrated {plugin.name} (schema {plugin.schema})" in first.stdout
    migrated = [p.schema for p in plugins if p.migrations is not None]
    heads = _heads(name, migrated)
    assert all(heads.values()), heads
    # Each service's outbox exists: what the services need before they take traffic.
    for plugin in plugins:
        rows = admin_sql(f"SELECT to_regclass('\"{plugin.schema}\".outbox')", database=name)
        assert rows[0][0] is not None, plugin.name

    again = _migrate(url)
    assert again.returncode == 0, again.stderr
    assert _heads(name, migrated) == heads


def test_migrate_only_the_services_named(database: tuple[str, str]) -> None:
    name, url = database
    done = _migrate(url, "registry")
    assert done.returncode == 0, done.stderr
    schemas = {str(r[0]) for r in admin_sql("SELECT nspname FROM pg_namespace", database=name)}
    assert "registry" in schemas
    assert "builder" not in schemas


def test_migrate_refuses_an_unknown_service_and_a_missing_database_url(
    database: tuple[str, str],
) -> None:
    _, url = database
    unknown = _migrate(url, "registry", "nosuch")
    assert unknown.returncode == 1
    assert "not installed: nosuch" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = _migrate(None)
    assert missing.returncode == 1
    assert "MLPLANE_DATABASE_URL" in missing.stderr


def test_a_failing_migration_exits_1_naming_the_service(database: tuple[str, str]) -> None:
    name, url = database
    # A table where the registry's first revision creates its own: the migration fails.
    admin_sql("CREATE SCHEMA registry; CREATE TABLE registry.outbox (x int)", database=name)
    failed = _migrate(url, "registry")
    assert failed.returncode == 1
    assert "migrating registry failed" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    failed = _migrate("postgresql://mlplane:hunter2-not-logged@127.0.0.1:1/mlplane", "registry")
    assert failed.returncode == 1
    assert "migrating registry failed" in failed.stderr
    assert "hunter2-not-logged" not in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
