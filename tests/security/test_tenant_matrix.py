"""The tenant matrix: every route the platform serves, in dev and in production settings,
through the gateway and straight at the service, refuses whoever may not call it and
never shows one team's data to another.

Routes are read from the hosted app (`platform.app.routes`), so a route added later is
covered or fails `test_every_served_route_is_classified` until `route_table.ROUTES`
says what guards it. For a route of a service the gateway fronts, each way in gets:

- no credential: 401 (problem+json; MLflow's JSON straight at the MLflow API);
- forged `X-Mlplane-Team`/`X-Mlplane-Principal` alone: 401; added to team A's
  genuine credential they change nothing (team B's objects stay not found);
- forged identity tokens straight at the service (wrong secret, another service's
  key, `alg: none`, another audience, expired, the secret as key): 401; a genuine
  identity token sent to the gateway instead of an API key: 401;
- team A's admin credential on team B's objects: 404, or for a route naming no
  object of another team, team A's own answer; never team B's name or marker;
- a credential without the route's scope (read: no `models:read`; write: only
  `models:read`; admin: `models:read` + `models:write`; the deployer's `deploy:write`:
  read + `deploy:approve`; `deploy:approve`: read + `deploy:write`; its policy changes:
  every scope but `admin`): 403;
- team A's admin on team A's objects: the route's success status.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from mlplane_contracts.scopes import (
    DEPLOY_APPROVE,
    DEPLOY_WRITE,
    EVENTS_SUBSCRIBE,
    MODELS_READ,
    MODELS_WRITE,
)

from .forgery import forged_headers, forged_tokens, valid_token
from .route_table import (
    MLFLOW,
    ROUTES,
    Call,
    Guard,
    RouteSpec,
    gateway_path,
    served_path,
    service_of,
    table_key,
)
from .world import World

PROBLEM_JSON = "application/problem+json"
LACKING = {
    Guard.READ: {EVENTS_SUBSCRIBE},
    Guard.WRITE: {MODELS_READ},
    Guard.ADMIN: {MODELS_READ, MODELS_WRITE},
    Guard.DEPLOY_WRITE: {MODELS_READ, MODELS_WRITE, DEPLOY_APPROVE},
    Guard.DEPLOY_APPROVE: {MODELS_READ, MODELS_WRITE, DEPLOY_WRITE},
    Guard.DEPLOY_ADMIN: {MODELS_READ, MODELS_WRITE, DEPLOY_WRITE, DEPLOY_APPROVE},
}
LACKING_KEY = {
    Guard.READ: "a_other",
    Guard.WRITE: "a_read",
    Guard.ADMIN: "a_write",
    Guard.DEPLOY_WRITE: "a_approver",
    Guard.DEPLOY_APPROVE: "a_deploy",
    Guard.DEPLOY_ADMIN: "a_deploy",
}
PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::path)?\}")


def served_routes(world: World) -> list[tuple[str, str]]:
    """Every (method, path template) the hosted app serves."""
    found = world.stack.state.get("routes")
    if found is None:
        found = sorted(
            (method, str(route.path))
            for route in iter_route_contexts(world.stack.platform.app.routes)
            for method in (route.methods or ())
        )
        world.stack.state["routes"] = found
    return list(found)


def test_every_served_route_is_classified(world: World) -> None:
    served = served_routes(world)
    missing = sorted({table_key(m, p) for m, p in served} - set(ROUTES))
    assert not missing, f"routes served but not classified in route_table.ROUTES: {missing}"
    keys = {table_key(m, p) for m, p in served}
    stale = [
        key
        for key, spec in ROUTES.items()
        if key not in keys and not (spec.guard is Guard.SIGNED_URL and world.stack.mode == "prod")
    ]
    assert not stale, f"classified routes no longer served: {stale}"


class Matrix:
    """Sends the cases of one route and collects what went wrong (all of it, not the
    first only)."""

    def __init__(self, world: World, key: tuple[str, str], spec: RouteSpec) -> None:
        self.world = world
        self.key = key
        self.spec = spec
        self.failures: list[str] = []
        self.cases = 0
        self.client = httpx.Client(base_url=world.stack.url, timeout=60)

    def send(self, call: Call, headers: dict[str, str], path: str | None = None) -> httpx.Response:
        self.cases += 1
        kwargs = call.kwargs()
        kwargs["headers"] = {**kwargs["headers"], **headers}
        return self.client.request(call.method, path or call.path, **kwargs)

    def expect(self, what: str, answer: httpx.Response, status: int) -> None:
        if answer.status_code != status:
            self.failures.append(
                f"{what}: {answer.request.method} {answer.request.url.raw_path.decode()} "
                f"answered {answer.status_code}, expected {status}: {answer.text[:300]}"
            )

    def refused(self, what: str, answer: httpx.Response, status: int, mlflow: bool) -> None:
        self.expect(what, answer, status)
        if answer.request.method == "HEAD":
            return
        kind = answer.headers.get("content-type", "")
        if mlflow:
            if "error_code" not in answer.text:
                self.failures.append(f"{what}: an MLflow refusal without error_code: {answer.text}")
        elif kind != PROBLEM_JSON:
            self.failures.append(f"{what}: refused as {kind!r}, not problem+json")

    def no_team_b(self, what: str, answer: httpx.Response) -> None:
        for secret in (self.world.b.team, self.world.b.marker):
            if secret in answer.text:
                self.failures.append(f"{what}: team B's {secret!r} in the answer: {answer.text}")

    def api_key(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.keys[name]}"}

    def close(self) -> None:
        self.client.close()


def _fill(path: str, world: World) -> str:
    values = {"team": world.b.team, "path": "anything", "key": "x"}
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), "1"), path)


def _fronted(m: Matrix, method: str, route_path: str) -> None:
    world, spec = m.world, m.spec
    assert spec.call is not None
    service = service_of(route_path)
    mlflow_route = table_key(method, route_path)[1].startswith(MLFLOW)
    made = spec.call(world, "other", method)
    other = Call(
        made.method, served_path(made.path, route_path), made.json, made.content, made.content_type
    )

    def again() -> Call:
        # A call naming nothing of team B's (a create) must be made afresh each time.
        if spec.cross == "own":
            made = spec.call(world, "other", method)
            return Call(
                made.method,
                served_path(made.path, route_path),
                made.json,
                made.content,
                made.content_type,
            )
        return other

    cross_status = spec.cross_status or (404 if spec.cross == "not_found" else spec.success)
    team_b = world.b.team

    # -- through the gateway ------------------------------------------------------------
    public = gateway_path(other.path)
    m.refused("gateway, no credential", m.send(other, {}, public), 401, False)
    m.refused(
        "gateway, forged headers only", m.send(other, forged_headers(team_b), public), 401, False
    )
    genuine = valid_token(service, team_b, world.stack.identity_secret)
    m.refused("gateway, an identity token for a key", m.send(other, genuine, public), 401, False)
    answer = m.send(again(), {**m.api_key("a_admin"), **forged_headers(team_b)}, public)
    m.expect("gateway, team A's key with forged headers", answer, cross_status)
    m.no_team_b("gateway, team A's key with forged headers", answer)
    answer = m.send(again(), m.api_key("a_admin"), public)
    m.expect("gateway, team A's key on team B's objects", answer, cross_status)
    m.no_team_b("gateway, team A's key on team B's objects", answer)
    if spec.guard in LACKING_KEY:
        answer = m.send(other, m.api_key(LACKING_KEY[spec.guard]), public)
        m.refused(f"gateway, a key without {spec.guard.value}", answer, 403, False)

    # -- straight at the service ----------------------------------------------------------
    m.refused("direct, no credential", m.send(other, {}), 401, mlflow_route)
    m.refused(
        "direct, forged headers only", m.send(other, forged_headers(team_b)), 401, mlflow_route
    )
    for name, headers in forged_tokens(service, team_b, world.stack.identity_secret).items():
        m.refused(f"direct, forged token ({name})", m.send(other, headers), 401, mlflow_route)
    own_token = world.token(service, world.a.team)
    answer = m.send(again(), {**own_token, **forged_headers(team_b)})
    m.expect("direct, team A's token with forged headers", answer, cross_status)
    m.no_team_b("direct, team A's token with forged headers", answer)
    answer = m.send(again(), own_token)
    m.expect("direct, team A's token on team B's objects", answer, cross_status)
    m.no_team_b("direct, team A's token on team B's objects", answer)
    if spec.guard in LACKING:
        lacking = world.token(service, world.a.team, LACKING[spec.guard])
        m.refused(
            f"direct, a token without {spec.guard.value}", m.send(other, lacking), 403, mlflow_route
        )

    if spec.call is not None and "replay" in route_path:
        answer = m.send(other, own_token)
        if answer.status_code == 200 and answer.json().get("replayed") != 0:
            m.failures.append(f"team A replayed team B's dead letter: {answer.text}")

    # -- admitted -----------------------------------------------------------------------
    for way in ("gateway", "direct"):
        own = spec.call(world, "own", method)
        path = served_path(own.path, route_path)
        if way == "gateway":
            answer = m.send(own, m.api_key("a_admin"), gateway_path(path))
        else:
            answer = m.send(own, own_token, path)
        m.expect(f"{way}, admitted", answer, spec.success)


def _signed(m: Matrix, method: str, route_path: str) -> None:
    world, spec = m.world, m.spec
    assert spec.call is not None
    forged = spec.call(world, "other", method)
    team_b = world.b.team
    attempts: dict[str, dict[str, str]] = {
        "no credential": {},
        "forged headers": forged_headers(team_b),
        "team A's token": world.token("registry", world.a.team),
        **forged_tokens("registry", team_b, world.stack.identity_secret),
    }
    for name, headers in attempts.items():
        answer = m.send(forged, headers)
        # (The answer may name the path asked for: the caller's own input.)
        m.refused(f"direct, a forged signature with {name}", answer, 403, False)
    unsigned = Call(forged.method, forged.path.split("?", 1)[0], content=forged.content)
    answer = m.send(unsigned, {})
    if answer.status_code < 400:
        m.failures.append(f"an unsigned URL answered {answer.status_code}")
    answer = m.send(forged, m.api_key("a_admin"), gateway_path(forged.path))
    m.refused("gateway, team A's key with a forged signature", answer, 403, False)
    m.expect("direct, admitted", m.send(spec.call(world, "own", method), {}), spec.success)


def _gateway_admin(m: Matrix, method: str, route_path: str) -> None:
    world, spec = m.world, m.spec
    assert spec.call is not None
    other = spec.call(world, "other", method)
    m.refused("no credential", m.send(other, {}), 401, False)
    m.refused("forged headers only", m.send(other, forged_headers(world.b.team)), 401, False)
    identity = valid_token("gateway", world.b.team, world.stack.identity_secret)
    m.refused("an identity token for a key", m.send(other, identity), 401, False)
    m.refused("a key without admin", m.send(other, m.api_key("a_write")), 403, False)
    answer = m.send(other, {**m.api_key("a_admin"), **forged_headers(world.b.team)})
    m.expect("team A's admin key with forged headers", answer, 200)
    m.no_team_b("team A's admin key with forged headers", answer)
    if "replay" in route_path and answer.json().get("replayed") != 0:
        m.failures.append(f"team A replayed team B's gateway dead letter: {answer.text}")
    m.expect("admitted", m.send(spec.call(world, "own", method), m.api_key("a_admin")), 200)


def _refusals_only(m: Matrix, method: str, route_path: str) -> None:
    world = m.world
    call = Call(
        method, _fill(route_path, world), json={} if method not in ("GET", "HEAD") else None
    )
    m.refused("no credential", m.send(call, {}), 401, False)
    m.refused("forged headers only", m.send(call, forged_headers(world.b.team)), 401, False)
    for audience in ("gateway", "registry"):
        identity = valid_token(audience, world.b.team, world.stack.identity_secret)
        m.refused(f"an identity token ({audience}) for a key", m.send(call, identity), 401, False)
    if route_path.startswith("/v1/drift"):
        answer = m.send(call, m.api_key("a_admin"))
        m.expect("admitted to a service not installed", answer, 503)


def _public(m: Matrix, method: str, route_path: str) -> None:
    assert m.spec.call is not None
    answer = m.send(m.spec.call(m.world, "own", method), forged_headers(m.world.b.team))
    m.expect("public, no credential", answer, 200)
    m.no_team_b("public", answer)


CONSOLE_OPEN = ("/", "/console/sign-in", "/console/sign-in/oidc", "/console/oidc/callback")
CONSOLE_VALUES = {
    "name": "m",
    "number": "1",
    "digest": "sha256:" + "0" * 64,
    "deployment_id": "00000000-0000-4000-8000-000000000000",
    "etag": "0",
}


def _console(m: Matrix, method: str, route_path: str) -> None:
    world = m.world
    path = PLACEHOLDER.sub(lambda found: CONSOLE_VALUES.get(found.group(1), "x"), route_path)
    call = Call(method, path)
    if route_path in CONSOLE_OPEN or route_path.startswith("/console/static/"):
        answer = m.send(call, forged_headers(world.b.team))
        if answer.status_code >= 500:
            m.failures.append(f"{method} {path} answered {answer.status_code}")
        m.no_team_b("console, open", answer)
        return
    for what, headers in (
        ("no session", {}),
        ("forged headers", forged_headers(world.b.team)),
        ("team A's admin key, no session", m.api_key("a_admin")),
    ):
        answer = m.send(call, headers)
        m.expect(f"console, {what}", answer, 303)
        if not answer.headers.get("location", "").startswith("/console/sign-in?next="):
            m.failures.append(f"console, {what}: not sent to sign in: {answer.headers}")
        m.no_team_b(f"console, {what}", answer)


RUNNERS: dict[Guard, Any] = {
    Guard.READ: _fronted,
    Guard.WRITE: _fronted,
    Guard.ADMIN: _fronted,
    Guard.DEPLOY_WRITE: _fronted,
    Guard.DEPLOY_APPROVE: _fronted,
    Guard.DEPLOY_ADMIN: _fronted,
    Guard.SIGNED_URL: _signed,
    Guard.GATEWAY_ADMIN: _gateway_admin,
    Guard.GATEWAY_OWN: _refusals_only,
    Guard.FACADE: _refusals_only,
    Guard.PUBLIC: _public,
    Guard.CONSOLE: _console,
}


def serves(mode: str, params: dict[str, Any]) -> bool:
    """Whether the case exists in `mode` (see conftest): the signed artifact URLs are
    served only with artifacts on the local disk (dev); prod keeps them in S3."""
    key = params.get("key")
    return not (mode == "prod" and key in ROUTES and ROUTES[key].guard is Guard.SIGNED_URL)


@pytest.mark.parametrize(
    "key", sorted(ROUTES), ids=[f"{method} {path}" for method, path in sorted(ROUTES)]
)
def test_route_refuses_and_admits_as_classified(world: World, key: tuple[str, str]) -> None:
    spec = ROUTES[key]
    paths = [p for m, p in served_routes(world) if m == key[0] and table_key(m, p) == key]
    assert paths, f"{key} is classified but not served in {world.stack.mode}"
    matrix = Matrix(world, key, spec)
    try:
        for path in paths:
            RUNNERS[spec.guard](matrix, key[0], path)
    finally:
        matrix.close()
        counted = world.stack.state.setdefault("cases", {})
        counted[key] = counted.get(key, 0) + matrix.cases
    assert not matrix.failures, "\n".join(matrix.failures)


def test_team_b_objects_are_untouched(world: World) -> None:
    """After every case above, team B still has everything it had, unchanged."""
    b = world.b
    model = world.as_team(b, "registry", "GET", f"/models/{b.model}")
    assert b.marker in model["description"]
    version = world.as_team(b, "registry", "GET", f"/models/{b.model}/versions/1")
    assert version["status_message"] == f"status {b.marker}"
    world.as_team(b, "registry", "GET", f"/models/{b.model}/aliases/{b.alias}")
    policy = world.as_team(b, "scanner", "GET", "/policies/prod")
    assert f"LicenseRef-{b.marker}" in policy["license_deny"]
    assert any(e["finding_id"] == b.finding_id for e in policy["exceptions"])
    world.as_team(b, "builder", "GET", f"/builds/{b.build_id}")
    deployment = world.as_team(b, "deployer", "GET", f"/deployments/{b.deployment_id}")
    assert (deployment["phase"], deployment["work"]) == ("committed", "none"), deployment
    assert deployment["approvals"] == []
    assert deployment["rolled_back_by"] is None
    listed = world.as_team(b, "deployer", "GET", "/deployments?limit=500")
    assert [d["id"] for d in listed["deployments"]] == [b.deployment_id], listed
    rules = world.as_team(b, "deployer", "GET", "/policies/dev")
    assert [w["reason"] for w in rules["freeze_windows"]] == [f"freeze of {b.marker}"]
    for service in ("registry", "builder", "scanner", "deployer"):
        letters = world.as_team(b, service, "GET", "/dead-letters?limit=1000")
        assert b.dead_letters[service] in [x["id"] for x in letters["dead_letters"]], service
    cases = world.stack.state.get("cases", {})
    print(f"\n{world.stack.mode}: {len(cases)} routes, {sum(cases.values())} calls")
