"""The request plumbing of module-level routes: units of work, the caller, the binding.

Against the real PostgreSQL, in a throwaway schema. The routes below are declared
once, at module level, and served by two hostings of one app (as `mlplane up` does),
each bound to its own context and resources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_runtime.app import create_service_app
from mlplane_runtime.db import Database
from mlplane_runtime.deps import (
    CurrentCaller,
    Principal,
    ReadUow,
    Team,
    WriteUow,
    bind_service,
    require,
    resources,
    scoped,
)
from mlplane_runtime.errors import Conflict
from mlplane_runtime.messaging_tables import messaging_tables
from mlplane_runtime.service import ServiceParts
from mlplane_testing.database import unique_schema_name
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context
from sqlalchemy import MetaData, text


@dataclass(frozen=True, slots=True)
class Notes:
    """The resources of one hosting: the schema its notes are kept in."""

    schema: str


NotesDep = Annotated[Notes, Depends(resources(Notes))]

router = APIRouter(dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))])
returned: list[str] = []
"""Values of `add_note` calls that returned: the route ran to its end."""


@router.post("/notes/{value}", status_code=201)
async def add_note(value: int, notes: NotesDep, uow: WriteUow, who: Principal) -> dict[str, str]:
    # `value` twice: the deferred unique constraint refuses it at commit, not here.
    for _ in range(2 if value < 0 else 1):
        await uow.session.execute(
            text(f'INSERT INTO "{notes.schema}".notes (value, author) VALUES (:v, :who)'),
            {"v": value, "who": who},
        )
    returned.append(f"{notes.schema}:{value}")
    return {"schema": notes.schema}


@router.post("/notes/{value}/refused")
async def add_then_refuse(value: int, notes: NotesDep, uow: WriteUow) -> dict[str, str]:
    await uow.session.execute(
        text(f'INSERT INTO "{notes.schema}".notes (value, author) VALUES (:v, :who)'),
        {"v": value, "who": "refused"},
    )
    raise Conflict("refused after writing")


@router.get("/notes")
async def list_notes(notes: NotesDep, uow: ReadUow, team: Team) -> dict[str, object]:
    rows = await uow.session.execute(text(f'SELECT value FROM "{notes.schema}".notes'))
    return {"team": team, "values": sorted(v for (v,) in rows)}


@router.get("/admin", dependencies=[Depends(require("platform:admin"))])
async def admin(caller: CurrentCaller) -> dict[str, str]:
    return {"principal": caller.principal}


@dataclass(frozen=True)
class Hosting:
    name: str
    schema: str


async def _notes_schema(database: Database, schema: str) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(
            messaging_tables(MetaData(schema=schema)).outbox.metadata.create_all
        )
        await connection.execute(
            text(
                f'CREATE TABLE "{schema}".notes (value int NOT NULL, author text NOT NULL,'
                " CONSTRAINT one_note_per_value UNIQUE (value) DEFERRABLE INITIALLY DEFERRED)"
            )
        )


@pytest.fixture
async def two_hostings(
    database: Database, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Hosting, Hosting]]:
    """One app serving `router` for two services, each bound to its own schema and key."""
    hostings: list[Hosting] = []
    bound: list[APIRouter] = []
    try:
        for name in ("notes-a", "notes-b"):
            hosting = Hosting(name, unique_schema_name())
            await database.ensure_schema(hosting.schema)
            hostings.append(hosting)
            await _notes_schema(database, hosting.schema)
            context = service_context(
                name,
                database,
                messaging_tables(MetaData(schema=hosting.schema)),
                data_dir=tmp_path / name,
            )
            parts = ServiceParts(routers=[router], resources=Notes(hosting.schema))
            outer = APIRouter(prefix=f"/{name}")
            outer.include_router(bind_service(parts.routers, context, parts))
            bound.append(outer)
        app = create_service_app("two", routers=bound)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://mlplane", auth=GatewayIdentity(None)
        ) as http:
            yield http, hostings[0], hostings[1]
    finally:
        for hosting in hostings:
            await database.drop_schema(hosting.schema)


async def _values(database: Database, schema: str) -> list[int]:
    async with database.sessions() as session:
        rows = await session.execute(text(f'SELECT value FROM "{schema}".notes ORDER BY value'))
        return [value for (value,) in rows]


class TestWriteUnitOfWork:
    async def test_a_route_that_returns_is_committed_before_its_answer(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting], database: Database
    ) -> None:
        http, a, _ = two_hostings
        response = await http.post(f"/{a.name}/notes/7", headers={"X-Mlplane-Team": "t1"})
        assert response.status_code == 201, response.text
        assert await _values(database, a.schema) == [7]

    async def test_a_failing_commit_is_the_error_response_not_a_success(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting], database: Database
    ) -> None:
        http, a, _ = two_hostings
        response = await http.post(f"/{a.name}/notes/-3", headers={"X-Mlplane-Team": "t1"})
        # The route returned (its 201 was decided), then the commit failed: the client
        # sees the commit's failure, because the commit runs before the response is sent.
        assert f"{a.schema}:-3" in returned
        assert response.status_code == 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await _values(database, a.schema) == []

    async def test_a_route_that_raises_is_rolled_back(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting], database: Database
    ) -> None:
        http, a, _ = two_hostings
        response = await http.post(f"/{a.name}/notes/5/refused", headers={"X-Mlplane-Team": "t1"})
        assert response.status_code == 409, response.text
        assert await _values(database, a.schema) == []


class TestBinding:
    async def test_each_service_of_one_app_reaches_its_own_hosting(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting], database: Database
    ) -> None:
        http, a, b = two_hostings
        head = {"X-Mlplane-Team": "t1"}
        assert (await http.post(f"/{a.name}/notes/1", headers=head)).status_code == 201
        assert (await http.post(f"/{b.name}/notes/2", headers=head)).status_code == 201
        assert (await http.get(f"/{a.name}/notes", headers=head)).json() == {
            "team": "t1",
            "values": [1],
        }
        assert (await http.get(f"/{b.name}/notes", headers=head)).json()["values"] == [2]

    async def test_a_token_for_one_service_is_refused_by_the_other(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting]
    ) -> None:
        http, a, b = two_hostings
        # Signed for `a` (its key and audience), sent to `b`.
        misaddressed = GatewayIdentity(a.name)
        response = await http.get(
            f"/{b.name}/notes", headers={"X-Mlplane-Team": "t1"}, auth=misaddressed
        )
        assert response.status_code == 401, response.text

    async def test_scopes_are_checked_per_route(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting]
    ) -> None:
        http, a, _ = two_hostings
        reader = GatewayIdentity(None, scopes=[MODELS_READ])
        read = await http.get(f"/{a.name}/notes", headers={"X-Mlplane-Team": "t1"}, auth=reader)
        assert read.status_code == 200, read.text
        write = await http.post(f"/{a.name}/notes/9", headers={"X-Mlplane-Team": "t1"}, auth=reader)
        assert write.status_code == 403, write.text
        admin = await http.get(f"/{a.name}/admin", auth=reader)
        assert admin.status_code == 403, admin.text

    async def test_a_route_needing_a_team_names_the_header(
        self, two_hostings: tuple[httpx.AsyncClient, Hosting, Hosting]
    ) -> None:
        http, a, _ = two_hostings
        response = await http.get(f"/{a.name}/notes")  # the operator, acting for no team
        assert response.status_code == 422, response.text
        assert "X-Mlplane-Team" in response.text

    async def test_routes_no_host_bound_answer_500(
        self, database: Database, tmp_path: Path
    ) -> None:
        app = create_service_app("unbound", routers=[router])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", auth=GatewayIdentity("unbound")
        ) as http:
            response = await http.get("/notes", headers={"X-Mlplane-Team": "t1"})
        assert response.status_code == 500

    async def test_the_test_app_binds_the_same_way(
        self, database: Database, tmp_path: Path
    ) -> None:
        schema = unique_schema_name()
        await database.ensure_schema(schema)
        try:
            await _notes_schema(database, schema)
            context = service_context(
                "notes", database, messaging_tables(MetaData(schema=schema)), data_dir=tmp_path
            )
            app = service_app(context, ServiceParts(routers=[router], resources=Notes(schema)))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://x", auth=GatewayIdentity("notes")
            ) as http:
                created = await http.post("/notes/4", headers={"X-Mlplane-Team": "t1"})
            assert created.status_code == 201, created.text
            assert await _values(database, schema) == [4]
        finally:
            await database.drop_schema(schema)
