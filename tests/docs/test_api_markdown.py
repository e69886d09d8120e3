"""The reference pages' Markdown: every link a generated page holds points at an anchor the
page defines, and the parts of a route a reader needs are on it."""

from __future__ import annotations

import re
from typing import Any

from .conftest import REPO, load_by_path

# The hook's module, loaded by its path as MkDocs loads hooks (docs/ is no package).
api_markdown = load_by_path(
    "mlplane_docs_api_markdown", REPO / "docs" / "hooks" / "api_markdown.py"
)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "paths": {
        "/models/{name}": {
            "put": {
                "summary": "Put Model",
                "description": "Create or replace a model.",
                "x-mlplane-scope": "models:write",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ModelIn"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "The model",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ModelOut"}
                            }
                        },
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {
            "ModelIn": {
                "type": "object",
                "properties": {
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}}
                },
            },
            "ModelOut": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "description": "A | DNS label"},
                    "stage": {"anyOf": [{"$ref": "#/components/schemas/Stage"}, {"type": "null"}]},
                },
            },
            "Stage": {"enum": ["registered", "built"], "type": "string"},
        }
    },
}


def _links_and_anchors(page: str) -> tuple[set[str], set[str]]:
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    anchors = set(re.findall(r"\{#([^}]+)\}", page))
    return links, anchors


def test_every_link_of_an_openapi_page_has_its_anchor() -> None:
    page = api_markdown.openapi_page("registry", DOCUMENT)
    links, anchors = _links_and_anchors(page)
    assert links
    assert links <= anchors, links - anchors


def test_a_route_shows_its_scope_parameters_body_and_answers() -> None:
    page = api_markdown.openapi_page("registry", DOCUMENT)
    assert "### PUT `/models/{name}`" in page
    assert "Scope: `models:write`." in page
    assert "| `name` | path | string | yes |" in page
    assert "Request body (required): `application/json` [ModelIn](#schema-modelin)" in page
    assert "| `stage` | [Stage](#schema-stage) or null | no |" in page
    assert "A \\| DNS label" in page  # a pipe in text does not break the table
    assert "`GET /v1/registry" in page or "`/v1/registry`" in page


def test_every_link_of_the_asyncapi_page_has_its_anchor() -> None:
    from mlplane_contracts.export import asyncapi_document

    page = api_markdown.asyncapi_page(asyncapi_document())
    links, anchors = _links_and_anchors(page)
    assert links
    assert links <= anchors, links - anchors
