"""The MLflow searches' SQL: MLflow's filter clauses and orderings on the registry's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_registry.domain import Model, ModelVersion
from mlplane_registry.mlflow.tags import RUN_ID_TAG, SOURCE_TAG
from mlplane_registry.store.repository import alias_names_of, version_names
from mlplane_registry.store.rows import model_from_row, version_from_row
from mlplane_registry.store.search import Comparison, Ordering
from mlplane_registry.store.tables import RegistryTables


class MlflowSearchStore:
    """MLflow's `search` of models and versions on one session (the unit of work's)."""

    def __init__(self, session: AsyncSession, tables: RegistryTables) -> None:
        self._session = session
        self._t = tables

    async def search_models(
        self,
        team: str,
        comparisons: Sequence[Comparison],
        orderings: Sequence[Ordering],
        offset: int,
        limit: int,
    ) -> list[Model]:
        """`team`'s models every comparison holds for, ordered, from `offset`, at most `limit`."""
        models = self._t.models
        columns = {
            "name": models.c.name,
            "created": models.c.created_at,
            "updated": models.c.updated_at,
        }
        query: Select[Any] = select(models).where(models.c.team == team)
        for comparison in comparisons:
            if comparison.field == "tag":
                assert comparison.key is not None
                column = models.c.tags[comparison.key].astext
            else:
                column = columns[comparison.field]
            query = query.where(_condition(column, comparison))
        query = query.order_by(*_order(columns, orderings)).offset(offset).limit(limit)
        return [model_from_row(row) for row in await self._session.execute(query)]

    async def search_versions(
        self,
        team: str,
        comparisons: Sequence[Comparison],
        orderings: Sequence[Ordering],
        offset: int,
        limit: int,
    ) -> list[ModelVersion]:
        """`team`'s versions every comparison holds for, ordered, from `offset`, at most `limit`."""
        versions = self._t.versions
        columns: dict[str, Any] = {
            "name": versions.c.model,
            "version": versions.c.version,
            "created": versions.c.created_at,
            "updated": versions.c.updated_at,
            "run_id": versions.c.tags[RUN_ID_TAG].astext,
            "source": func.coalesce(
                versions.c.tags[SOURCE_TAG].astext, versions.c.artifact["uri"].astext
            ),
        }
        query: Select[Any] = select(versions, alias_names_of(self._t)).where(
            versions.c.team == team
        )
        for comparison in comparisons:
            if comparison.field == "tag":
                assert comparison.key is not None
                column = versions.c.tags[comparison.key].astext
            else:
                column = columns[comparison.field]
            query = query.where(_condition(column, comparison))
        query = query.order_by(*_order(columns, orderings)).offset(offset).limit(limit)
        rows = (await self._session.execute(query)).all()
        return [version_from_row(row, version_names(row.alias_names)) for row in rows]


def _condition(column: Any, comparison: Comparison) -> ColumnElement[bool]:
    op, values = comparison.op, comparison.values
    if comparison.field in ("created", "updated"):
        value: Any = func.to_timestamp(literal(int(values[0])) / 1000.0)
    elif comparison.field == "version":
        value = int(values[0])
    else:
        value = values[0]
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value)  # type: ignore[no-any-return]
    if op == "IN":
        return column.in_(values)  # type: ignore[no-any-return]
    if op == "NOT IN":
        return column.not_in(values)  # type: ignore[no-any-return]
    return true()


def _order(columns: dict[str, Any], orderings: Sequence[Ordering]) -> list[Any]:
    return [columns[o.field].desc() if o.descending else columns[o.field].asc() for o in orderings]
