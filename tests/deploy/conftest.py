"""Shared by the deployment tests: the repository's paths and a throwaway database."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg2
import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
MLPLANE = REPO / ".venv" / "bin" / "mlplane"
SERVICES = ("gateway", "registry", "builder", "scanner", "deployer", "drift")
"""Every service of the platform, drift included (installed or not in this checkout)."""


def server_url() -> str:
    """The suite's PostgreSQL server (README: MLPLANE_TEST_DATABASE_URL)."""
    return os.environ.get(
        "MLPLANE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )


def admin_sql(sql: str, database: str | None = None) -> list[tuple[object, ...]]:
    """Run one statement outside a transaction (CREATE/DROP DATABASE); its rows, if any."""
    url = make_url(server_url())
    connection = psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=database or url.database or "postgres",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    """A database of its own, dropped after: (name, postgresql:// URL)."""
    name = f"deploy_{uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url()).set(drivername="postgresql", database=name)
        yield name, url.render_as_string(hide_password=False)
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any MLPLANE_*/TRIVY_* setting, plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "TRIVY_"))}
    environment.update(extra)
    return environment
