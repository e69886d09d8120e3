"""MkDocs hook: the API reference pages, generated from the code at every build.

One page per installed service from its FastAPI app's `openapi()` (the app `mlplane
serve <service>` builds, made without connecting to anything), and one page from the
AsyncAPI document `mlplane_contracts.export` builds. Both are plain Markdown, so the
site needs no script, no CDN and no network. The pages never exist on disk: they are
added to the build's files, so a stale copy can never be committed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from api_markdown import asyncapi_page, openapi_page
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REFERENCE = "reference"
# Never contacted: a database object is needed to build a service, not a connection.
OFFLINE_DATABASE_URL = "postgresql+asyncpg://docs@127.0.0.1:9/docs"
SERVICE_ORDER = ("gateway", "registry", "builder", "scanner", "deployer", "drift")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for name, document in service_documents().items():
        files.append(
            _generated(config, f"{REFERENCE}/openapi-{name}.md", openapi_page(name, document))
        )
    from mlplane_contracts.export import asyncapi_document

    files.append(_generated(config, f"{REFERENCE}/asyncapi.md", asyncapi_page(asyncapi_document())))
    return files


def _generated(config: MkDocsConfig, path: str, content: str) -> File:
    return File.generated(config, path, content=content)


def service_documents() -> dict[str, dict[str, Any]]:
    """Each installed service's OpenAPI document, as `mlplane serve <name>` would serve it,
    in the platform's order (services this hook does not know come last)."""
    from mlplane_runtime.db import create_database
    from mlplane_runtime.service import ENTRY_POINT_GROUP
    from mlplane_testing.service import service_app, service_context

    documents: dict[str, dict[str, Any]] = {}
    database = create_database(OFFLINE_DATABASE_URL)
    with _defaults_only(), tempfile.TemporaryDirectory(prefix="mlplane-docs-") as data_dir:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            plugin = entry.load()
            context = service_context(
                plugin.name, database, plugin.messaging(), data_dir=Path(data_dir) / plugin.name
            )
            documents[plugin.name] = service_app(context, plugin.parts_for(context)).openapi()
    known = [name for name in SERVICE_ORDER if name in documents]
    return {name: documents[name] for name in [*known, *sorted(set(documents) - set(known))]}


@contextlib.contextmanager
def _defaults_only() -> Iterator[None]:
    """The documents describe the defaults: none of the caller's MLPLANE_* settings."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLPLANE_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("MLPLANE_")]:
            del os.environ[name]
        os.environ.update(saved)
