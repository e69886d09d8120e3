"""Shared by the deployment tests: the repository's paths and a throwaway database."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def own_database() -> Iterator[tuple[str, str]]:
    """A database of its own, dropped after: (name, postgresql:// URL)."""
    name = f"deploy_{uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url()).set(drivername="postgresql", database=name)
        yield name, url.render_as_string(hide_password=False)
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    with own_database() as created:
        yield created


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


_METRIC_DEFINITION = re.compile(
    r'(Counter|Gauge|Histogram|Summary)\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"'
)
_PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "histogram_quantile",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "label_join",
        "vector",
        "scalar",
        "time",
        "absent",
        "absent_over_time",
        "changes",
        "resets",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "predict_linear",
        "sort",
        "sort_desc",
        "inf",
        "nan",
        "le",
    ]
)


def code_metric_names() -> set[str]:
    """Every series name the platform's code exposes (histograms: _bucket, _count, _sum)."""
    names: set[str] = set()
    for path in [*REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py")]:
        for kind, name in _METRIC_DEFINITION.findall(path.read_text()):
            names.add(name)
            if kind in ("Histogram", "Summary"):
                names.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
            if kind == "Counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
    return names


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (label matchers, groupings and strings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    # Numbers and durations (0.95, 5m, 1h30m) are not names.
    text = re.sub(r"(?<![\w:])\d[\d.eE+-]*(?:ms|[smhdwy])*", " ", text)
    words = re.findall(r"(?<![\w:])[a-zA-Z_:][a-zA-Z0-9_:]*", text)
    return {w for w in words if w not in _PROMQL_WORDS}
