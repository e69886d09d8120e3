"""`mlplane migrate [SERVICE...]`: bring the installed services' schemas to head, then exit.

Each service still migrates its own schema when it starts; this is the same step on its
own, for a deployment's one-shot migrations job (compose's `migrate` service, the
Kubernetes `Job` in `deploy/`), so that replicas start on a schema already at head and a
failing migration stops the rollout before any new pod takes traffic.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from mlplane_sdk.cli.failure import fail

if TYPE_CHECKING:
    from mlplane_runtime.service import ServicePlugin


def migrate(
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Services to migrate (default: every installed one)."),
    ] = None,
) -> None:
    """Apply each installed service's migrations to MLPLANE_DATABASE_URL and exit.

    Idempotent: a schema at head is left as it is. Services are migrated one after
    the other in name order; the first failure stops the command with exit code 1
    (that service's migration is rolled back, the ones before it stay applied).
    """
    from mlplane_runtime.service import PluginDiscoveryError, discover_services
    from mlplane_runtime.telemetry.logging import configure_logging

    from mlplane_sdk.cli.run import _settings

    settings = _settings()
    if settings.database_url is None:
        fail("mlplane migrate needs MLPLANE_DATABASE_URL (the embedded database migrates itself)")
    configure_logging("migrate", settings.log_level, format=settings.log_format)
    try:
        installed = discover_services()
    except PluginDiscoveryError as exc:
        fail(str(exc))
    chosen = _choose(installed, services or [])
    try:
        asyncio.run(_migrate_all(settings.database_url, chosen))
    except MigrationFailed as exc:
        # One sentence, not a traceback: the job's log is what an operator reads.
        fail(str(exc))


class MigrationFailed(Exception):
    """One service's migration failed (rolled back); names the service and the cause."""

    def __init__(self, service: str, cause: BaseException) -> None:
        super().__init__(f"migrating {service} failed: {type(cause).__name__}: {cause}")
        self.service = service


def _choose(installed: list[ServicePlugin], names: list[str]) -> list[ServicePlugin]:
    if not names:
        return installed
    by_name = {plugin.name: plugin for plugin in installed}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        fail(f"not installed: {', '.join(unknown)} (installed: {', '.join(by_name) or 'none'})")
    return [by_name[name] for name in sorted(set(names))]


async def _migrate_all(database_url: str, plugins: list[ServicePlugin]) -> None:
    for plugin in plugins:
        try:
            await _migrate_one(database_url, plugin)
        except Exception as exc:
            raise MigrationFailed(plugin.name, exc) from exc
        typer.echo(f"migrated {plugin.name} (schema {plugin.schema})")


async def _migrate_one(database_url: str, plugin: ServicePlugin) -> None:
    from mlplane_runtime.db import create_database
    from mlplane_runtime.migrations import upgrade_to_head

    # The host's prepare_schema, without hosting the service: a migrations-less
    # service gets its tables (messaging ones included) created directly.
    plugin.messaging()
    database = create_database(database_url, pool_size=1, max_overflow=0)
    try:
        await database.ensure_schema(plugin.schema)
        if plugin.migrations is not None:
            await upgrade_to_head(database.url, plugin.migrations, plugin.schema)
            return
        async with database.engine.begin() as connection:
            await connection.run_sync(plugin.metadata.create_all)
    finally:
        await database.dispose()
