"""problem+json rendering: every error path answers RFC 9457 with the right status."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import APIRouter, FastAPI, HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlplane_runtime.app import create_service_app
from mlplane_runtime.errors import Conflict, MlplaneError, NotFound, Unavailable
from mlplane_runtime.problem import PROBLEM_JSON, field_path, install_problem_handlers
from pydantic import BaseModel, Field

SECRET_TEXT = "postgresql://registry:s3cr3t-pw@db.internal:5432/mlplane"


class Item(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


class Order(BaseModel):
    customer: str
    items: list[Item]


class ModelAlreadyRegistered(Conflict):
    problem_type = "https://mlplane.io/problems/model-already-registered"
    title = "Model already registered"


def _routes() -> APIRouter:
    router = APIRouter()

    @router.post("/orders")
    async def create_order(order: Order) -> dict[str, int]:
        return {"items": len(order.items)}

    @router.get("/orders")
    async def list_orders(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    @router.get("/models/{name}")
    async def get_model(name: str) -> dict[str, str]:
        if name == "taken":
            raise ModelAlreadyRegistered("fraud is registered", model="fraud")
        if name == "down":
            raise Unavailable("the registry database does not answer")
        raise NotFound(f"no model {name}")

    @router.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError(SECRET_TEXT)

    @router.get("/crash-custom-base")
    async def crash_base() -> None:
        raise MlplaneError("an internal invariant broke")

    return router


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_service_app("problem-tests", routers=[_routes()])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions stays True: an exception escaping the app fails the test.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    return body


class TestMlplaneError:
    async def test_domain_error_answers_its_status_type_and_extensions(
        self, client: httpx.AsyncClient
    ) -> None:
        body = _assert_problem(await client.get("/models/taken"), 409)
        assert body["type"] == "https://mlplane.io/problems/model-already-registered"
        assert body["title"] == "Model already registered"
        assert body["detail"] == "fraud is registered"
        assert body["instance"] == "/models/taken"
        assert body["model"] == "fraud"

    async def test_not_found_answers_404(self, client: httpx.AsyncClient) -> None:
        body = _assert_problem(await client.get("/models/churn"), 404)
        assert body["detail"] == "no model churn"

    async def test_unavailable_answers_503(self, client: httpx.AsyncClient) -> None:
        _assert_problem(await client.get("/models/down"), 503)


class TestValidationError:
    async def test_invalid_body_field_is_named_by_its_path(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/orders", json={"customer": "acme", "items": [{"name": "a", "count": -1}]}
        )
        body = _assert_problem(response, 422)
        fields = {error["field"] for error in body["errors"]}
        assert fields == {"body.items[0].count"}
        assert all(error["message"] for error in body["errors"])
        assert "body.items[0].count" in body["detail"]

    async def test_missing_field_is_named(self, client: httpx.AsyncClient) -> None:
        body = _assert_problem(await client.post("/orders", json={"items": []}), 422)
        assert [error["field"] for error in body["errors"]] == ["body.customer"]

    async def test_bad_query_parameter_is_named(self, client: httpx.AsyncClient) -> None:
        body = _assert_problem(await client.get("/orders", params={"limit": "ten"}), 422)
        assert [error["field"] for error in body["errors"]] == ["query.limit"]

    async def test_malformed_json_is_422_not_500(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/orders", content=b'{"customer": ', headers={"content-type": "application/json"}
        )
        _assert_problem(response, 422)

    async def test_rejected_input_is_not_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/orders", json={"customer": SECRET_TEXT, "items": "x"})
        _assert_problem(response, 422)
        assert "s3cr3t-pw" not in response.text

    def test_field_path_joins_names_and_indexes(self) -> None:
        assert field_path(("body", "items", 0, "name")) == "body.items[0].name"
        assert field_path(("query", "limit")) == "query.limit"
        assert field_path(()) == ""


class TestHttpError:
    async def test_unknown_route_is_404_problem(self, client: httpx.AsyncClient) -> None:
        body = _assert_problem(await client.get("/nowhere"), 404)
        assert body["title"] == "Not Found"
        assert body["instance"] == "/nowhere"

    async def test_wrong_method_is_405_with_allow_header(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/teapot")
        _assert_problem(response, 405)
        assert response.headers["allow"] == "GET"

    async def test_http_exception_keeps_its_status_and_detail(
        self, client: httpx.AsyncClient
    ) -> None:
        body = _assert_problem(await client.get("/teapot"), 418)
        assert body["detail"] == "short and stout"


class TestUnhandledError:
    async def test_unhandled_exception_is_500_without_its_text(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/crash")
        body = _assert_problem(response, 500)
        assert "s3cr3t-pw" not in response.text
        assert "RuntimeError" not in response.text
        assert "db.internal" not in response.text
        assert body["instance"] == "/crash"

    async def test_unhandled_exception_is_logged_with_its_traceback(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="mlplane.http"):
            await client.get("/crash")
        records = [r for r in caplog.records if r.name == "mlplane.http"]
        assert len(records) == 1
        assert records[0].exc_info is not None
        assert records[0].exc_info[0] is RuntimeError

    async def test_base_error_class_answers_500_problem(self, client: httpx.AsyncClient) -> None:
        body = _assert_problem(await client.get("/crash-custom-base"), 500)
        assert body["detail"] == "an internal invariant broke"

    async def test_handlers_work_on_a_plain_fastapi_app(self) -> None:
        plain = FastAPI()
        install_problem_handlers(plain)

        @plain.get("/boom")
        async def boom() -> None:
            raise ValueError("internal detail")

        transport = httpx.ASGITransport(app=plain)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            response = await http.get("/boom")
            missing = await http.get("/missing")
        _assert_problem(response, 500)
        assert "internal detail" not in response.text
        _assert_problem(missing, 404)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


async def _send(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        return await http.request(method, url, **kwargs)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread: hypothesis drives sync tests, the app is async."""
    with start_blocking_portal() as running:
        yield running


class TestBadInputNeverAnswers500:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=st.binary(max_size=200))
    def test_arbitrary_bytes_answer_a_4xx_problem(
        self, app: FastAPI, portal: BlockingPortal, body: bytes
    ) -> None:
        response = portal.call(
            lambda: _send(
                app, "POST", "/orders", content=body, headers={"content-type": "application/json"}
            )
        )
        assert 400 <= response.status_code < 500 or response.status_code == 200
        if response.status_code != 200:
            assert response.headers["content-type"] == PROBLEM_JSON

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(document=json_values, limit=st.text(max_size=12))
    def test_arbitrary_json_and_query_answer_a_4xx_problem(
        self, app: FastAPI, portal: BlockingPortal, document: object, limit: str
    ) -> None:
        posted = portal.call(lambda: _send(app, "POST", "/orders", json=document))
        listed = portal.call(lambda: _send(app, "GET", "/orders", params={"limit": limit}))
        for response in (posted, listed):
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                assert response.headers["content-type"] == PROBLEM_JSON


class Echo(BaseModel):
    value: str
    as_json: bool = False


class TestUnstorableText:
    """The safety net behind the request models: PostgreSQL refusing text is the caller's 422."""

    @pytest.fixture
    async def db_client(self, database: Any) -> AsyncIterator[httpx.AsyncClient]:
        from sqlalchemy import text

        router = APIRouter()

        # A plain `str` field: nothing before the database refuses the NUL.
        @router.post("/echo")
        async def echo(body: Echo) -> dict[str, str]:
            cast = "cast(cast(:v as text) as jsonb)::text" if body.as_json else "cast(:v as text)"
            async with database.engine.connect() as connection:
                result = await connection.execute(text(f"select {cast}"), {"v": body.value})
                return {"echo": str(result.scalar_one())}

        app = create_service_app("unstorable", routers=[router])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            yield http

    async def test_nul_refused_by_postgresql_answers_422_not_500(
        self, db_client: httpx.AsyncClient
    ) -> None:
        body = _assert_problem(await db_client.post("/echo", json={"value": "a\x00b"}), 422)
        assert body["type"] == "https://mlplane.io/problems/unstorable-text"

    async def test_nul_escape_refused_in_jsonb_answers_422_not_500(
        self, db_client: httpx.AsyncClient
    ) -> None:
        response = await db_client.post("/echo", json={"value": '"a\\u0000b"', "as_json": True})
        _assert_problem(response, 422)

    async def test_storable_text_still_passes(self, db_client: httpx.AsyncClient) -> None:
        response = await db_client.post("/echo", json={"value": "fraud"})
        assert response.json() == {"echo": "fraud"}
