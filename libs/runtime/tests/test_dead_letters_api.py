"""The DLQ HTTP API: listing and replaying through the transport, errors as problem+json.

The transport is a small in-test fake: this file tests the HTTP shape only; the
RabbitMQ and in-process transports are tested against their own DLQs elsewhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from mlplane_runtime.app import create_service_app
from mlplane_runtime.bus.base import DeadLetter, DeliveryHandler, OutboundMessage
from mlplane_runtime.caller import caller_dependencies
from mlplane_runtime.dead_letters_api import dead_letters_router
from mlplane_runtime.errors import NotFound
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_runtime.problem import PROBLEM_JSON
from mlplane_testing.identity import TEST_IDENTITY_SECRET, GatewayIdentity

SERVICE = "scanner"
WHEN = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def _letter(dead_letter_id: str, body: bytes = b'{"ok": true}', **kwargs: object) -> DeadLetter:
    values: dict[str, object] = {
        "dead_letter_id": dead_letter_id,
        "service": SERVICE,
        "routing_key": "io.mlplane.image.built.v1",
        "message_id": f"msg-{dead_letter_id}",
        "reason": "ValueError: bad digest",
        "attempts": 5,
        "dead_lettered_at": WHEN,
        "headers": {},
        "body": body,
    }
    values.update(kwargs)
    return DeadLetter(**values)  # type: ignore[arg-type]


@dataclass
class FakeTransport:
    """Holds dead letters in a list; records what the API asked of it."""

    letters: list[DeadLetter] = field(default_factory=list)
    failure: Exception | None = None
    listed: list[tuple[str, int]] = field(default_factory=list)
    replayed: list[tuple[str, list[str] | None]] = field(default_factory=list)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        pass

    def subscribe(self, service: str, event_types: Sequence[str], handler: DeliveryHandler) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def dead_letters(self, service: str, limit: int = 100) -> list[DeadLetter]:
        self.listed.append((service, limit))
        if self.failure is not None:
            raise self.failure
        return self.letters[:limit]

    async def replay(self, service: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        self.replayed.append((service, None if dead_letter_ids is None else list(dead_letter_ids)))
        if self.failure is not None:
            raise self.failure
        if dead_letter_ids is None:
            count = len(self.letters)
            self.letters.clear()
            return count
        wanted = set(dead_letter_ids)
        kept = [letter for letter in self.letters if letter.dead_letter_id not in wanted]
        count = len(self.letters) - len(kept)
        self.letters[:] = kept
        return count


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def app(transport: FakeTransport) -> FastAPI:
    key = derive_identity_key(TEST_IDENTITY_SECRET.encode(), SERVICE)
    caller = caller_dependencies(SERVICE, key).caller
    return create_service_app(SERVICE, routers=[dead_letters_router(SERVICE, transport, caller)])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The operator (a token naming no team, every scope)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://svc", auth=GatewayIdentity(SERVICE)
    ) as http:
        yield http


def _team_body(team: str) -> bytes:
    return json.dumps({"team": team, "model": "fraud", "version": 1}).encode()


class TestWhoMaySee:
    async def test_without_a_verified_caller_nothing_is_shown_or_replayed(
        self, app: FastAPI, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1")]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as anonymous:
            listed = await anonymous.get("/dead-letters", headers={"X-Mlplane-Team": "a"})
            replayed = await anonymous.post("/dead-letters/replay")
        assert (listed.status_code, replayed.status_code) == (401, 401)
        assert transport.listed == []
        assert transport.replayed == []

    async def test_a_caller_without_the_admin_scope_is_forbidden(
        self, app: FastAPI, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1", body=_team_body("team-a"))]
        reader = GatewayIdentity(SERVICE, scopes=["models:read", "models:write"])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc", auth=reader
        ) as http:
            listed = await http.get("/dead-letters", headers={"X-Mlplane-Team": "team-a"})
            replayed = await http.post("/dead-letters/replay", headers={"X-Mlplane-Team": "team-a"})
        assert (listed.status_code, replayed.status_code) == (403, 403)
        assert listed.headers["content-type"] == PROBLEM_JSON
        assert transport.replayed == []

    async def test_a_team_admin_sees_and_replays_only_its_teams_letters(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        structured = json.dumps(
            {"specversion": "1.0", "id": "e", "source": "/x", "type": "t", "data": _team_body_obj()}
        ).encode()
        transport.letters = [
            _letter("a1", body=_team_body("team-a")),
            _letter("b1", body=_team_body("team-b")),
            _letter("a2", body=structured),
            _letter("unknown", body=b"\x00\x01"),
        ]
        team_a = {"X-Mlplane-Team": "team-a"}
        listed = await client.get("/dead-letters", headers=team_a)
        # The operator's own listing shows all of them.
        everything = await client.get("/dead-letters")
        named = await client.post(
            "/dead-letters/replay", json={"ids": ["b1", "a1"]}, headers=team_a
        )
        rest = await client.post("/dead-letters/replay", headers=team_a)
        assert [d["id"] for d in listed.json()["dead_letters"]] == ["a1", "a2"]
        assert len(everything.json()["dead_letters"]) == 4
        assert named.json() == {"replayed": 1}
        assert rest.json() == {"replayed": 1}
        assert [letter.dead_letter_id for letter in transport.letters] == ["b1", "unknown"]

    async def test_sql_statements_and_parameters_are_cut_from_reasons(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        reason = (
            "IntegrityError: (asyncpg.exceptions.UniqueViolationError) duplicate key\n"
            "[SQL: INSERT INTO registry.models (team, name) VALUES ($1, $2)]\n"
            "[parameters: ('team-b', 'their-secret-model')]\n"
            "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
        )
        transport.letters = [_letter("d1", reason=reason)]
        shown = (await client.get("/dead-letters")).json()["dead_letters"][0]["reason"]
        assert "duplicate key" in shown
        assert "their-secret-model" not in shown
        assert "INSERT" not in shown

    async def test_secret_fields_of_a_json_body_are_masked(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        body = json.dumps({"team": "t", "api_key": "mlp_abcdef", "nested": {"password": "pw"}})
        transport.letters = [_letter("d1", body=body.encode())]
        shown = (await client.get("/dead-letters")).json()["dead_letters"][0]["body"]
        assert "mlp_abcdef" not in shown
        assert '"pw"' not in shown
        assert json.loads(shown)["team"] == "t"


def _team_body_obj() -> dict[str, object]:
    return {"team": "team-a", "model": "fraud", "version": 2}


class TestListDeadLetters:
    async def test_lists_each_dead_letter_with_why_and_when(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1"), _letter("d2", reason="PoisonMessage: unknown type")]
        response = await client.get("/dead-letters")
        assert response.status_code == 200
        body = response.json()
        assert body["service"] == SERVICE
        assert body["count"] == 2
        first, second = body["dead_letters"]
        assert first == {
            "id": "d1",
            "routing_key": "io.mlplane.image.built.v1",
            "message_id": "msg-d1",
            "reason": "ValueError: bad digest",
            "attempts": 5,
            "dead_lettered_at": "2026-03-01T12:30:00Z",
            "headers": {},
            "body": '{"ok": true}',
            "body_encoding": "utf-8",
        }
        assert second["reason"] == "PoisonMessage: unknown type"
        assert transport.listed == [(SERVICE, 100)]

    async def test_limit_is_passed_to_the_transport(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter(f"d{i}") for i in range(5)]
        body = (await client.get("/dead-letters", params={"limit": 2})).json()
        assert [letter["id"] for letter in body["dead_letters"]] == ["d0", "d1"]
        assert transport.listed == [(SERVICE, 2)]

    @pytest.mark.parametrize("limit", ["0", "-1", "1001", "many", "1.5"])
    async def test_bad_limit_is_422_problem_and_never_reaches_the_transport(
        self, client: httpx.AsyncClient, transport: FakeTransport, limit: str
    ) -> None:
        response = await client.get("/dead-letters", params={"limit": limit})
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [e["field"] for e in response.json()["errors"]] == ["query.limit"]
        assert transport.listed == []

    async def test_binary_body_is_shown_as_base64(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        raw = b"\xff\xfe\x00not-utf8"
        transport.letters = [_letter("bin", body=raw)]
        (letter,) = (await client.get("/dead-letters")).json()["dead_letters"]
        assert letter["body_encoding"] == "base64"
        assert base64.b64decode(letter["body"]) == raw

    async def test_amqp_header_values_are_shown_as_json(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        headers = {
            "cloudEvents_source": "/mlplane/builder",
            "x-death": [{"count": 5, "time": WHEN, "queue": b"mlplane.scanner"}],
            "x-raw": b"\x80",
        }
        transport.letters = [_letter("h", headers=headers)]
        (letter,) = (await client.get("/dead-letters")).json()["dead_letters"]
        assert letter["headers"] == {
            "cloudEvents_source": "/mlplane/builder",
            "x-death": [{"count": 5, "time": WHEN.isoformat(), "queue": "mlplane.scanner"}],
            "x-raw": base64.b64encode(b"\x80").decode(),
        }

    async def test_secrets_are_never_shown(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [
            _letter(
                "s",
                reason="OperationalError: postgresql://scanner:db-pw-1@db/mlplane refused",
                headers={"authorization": "Bearer tok-2", "x-api-key": "key-3"},
                body=b'{"webhook_secret": "whs-4", "url": "https://u:pw-5@git.example/repo"}',
            )
        ]
        response = await client.get("/dead-letters")
        assert response.status_code == 200
        for secret in ("db-pw-1", "tok-2", "key-3", "whs-4", "pw-5"):
            assert secret not in response.text

    async def test_transport_failure_is_503_problem_without_its_text(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.failure = ConnectionError("amqp://guest:guest@rabbit:5672 channel closed")
        response = await client.get("/dead-letters")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "https://mlplane.io/problems/unavailable"
        assert "channel closed" not in response.text
        assert "guest" not in response.text

    async def test_transport_mlplane_error_keeps_its_status(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.failure = NotFound("no dead-letter queue for scanner")
        response = await client.get("/dead-letters")
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON


class TestReplay:
    async def test_replays_the_named_ids(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1"), _letter("d2"), _letter("d3")]
        response = await client.post("/dead-letters/replay", json={"ids": ["d1", "d3", "d1"]})
        assert response.status_code == 200
        assert response.json() == {"replayed": 2}
        assert transport.replayed == [(SERVICE, ["d1", "d3"])]
        assert [letter.dead_letter_id for letter in transport.letters] == ["d2"]

    async def test_no_body_replays_all(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1"), _letter("d2")]
        response = await client.post("/dead-letters/replay")
        assert response.json() == {"replayed": 2}
        assert transport.replayed == [(SERVICE, None)]

    async def test_body_without_ids_replays_all(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1")]
        response = await client.post("/dead-letters/replay", json={})
        assert response.json() == {"replayed": 1}
        assert transport.replayed == [(SERVICE, None)]

    async def test_empty_id_list_replays_nothing(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.letters = [_letter("d1")]
        response = await client.post("/dead-letters/replay", json={"ids": []})
        assert response.json() == {"replayed": 0}
        assert transport.replayed == []
        assert len(transport.letters) == 1

    @pytest.mark.parametrize(
        "body",
        [
            {"ids": "d1"},
            {"ids": [1, 2]},
            {"ids": [""]},
            {"ids": ["d1"], "all": True},
            ["d1"],
            "d1",
        ],
        ids=["ids-not-a-list", "ids-not-strings", "empty-id", "unknown-field", "list", "string"],
    )
    async def test_bad_body_is_422_problem_and_replays_nothing(
        self, client: httpx.AsyncClient, transport: FakeTransport, body: object
    ) -> None:
        response = await client.post("/dead-letters/replay", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert transport.replayed == []

    async def test_malformed_json_is_422_problem(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        response = await client.post(
            "/dead-letters/replay",
            content=b'{"ids": [',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert transport.replayed == []

    async def test_transport_failure_is_503_problem(
        self, client: httpx.AsyncClient, transport: FakeTransport
    ) -> None:
        transport.failure = TimeoutError("broker did not confirm")
        response = await client.post("/dead-letters/replay", json={"ids": ["d1"]})
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "confirm" not in response.text

    async def test_wrong_method_is_405_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/dead-letters/replay")
        assert response.status_code == 405
        assert response.headers["content-type"] == PROBLEM_JSON
