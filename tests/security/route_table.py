"""Every route the platform serves, classified: what guards it, what an admitted call is,
and what team A's credential gets on team B's objects.

Keys are `(method, path template)` as the hosted app declares them; the MLflow routes
under `/registry/ajax-api/2.0/mlflow` share the entries of `/registry/api/2.0/mlflow`.
`test_tenant_matrix.test_every_served_route_is_classified` fails for a route served
and missing here, and for an entry no route serves any more.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from mlplane_gateway.console import api as console_api

from .world import (
    ARTIFACT,
    RELAXED_RULES,
    TeamObjects,
    World,
    exception_body,
    version_body,
    vex_document,
)

Side = Literal["own", "other"]
MLFLOW = "/registry/api/2.0/mlflow"
AJAX_MLFLOW = "/registry/ajax-api/2.0/mlflow"
FRONTED = ("registry", "builder", "scanner", "deployer")


class Guard(Enum):
    READ = "models:read"
    WRITE = "models:write"
    ADMIN = "admin"
    DEPLOY_WRITE = "deploy:write"
    DEPLOY_APPROVE = "deploy:approve"
    DEPLOY_ADMIN = "admin + deploy:write"
    """The deployer's policy changes: `admin` and the router's `deploy:write`."""
    SIGNED_URL = "signed-url"
    """The local-disk artifact URLs: their HMAC signature is their authority."""
    GATEWAY_ADMIN = "gateway-admin"
    """The gateway's own dead letters: an API key (or OIDC token) with `admin`."""
    GATEWAY_OWN = "gateway-own"
    """The gateway's `/v1` routes: refusals here; every case in
    services/gateway/tests/integration/test_auth_matrix.py (enumerated from the app)."""
    FACADE = "facade"
    """The facade's catch-alls: exercised through every service route of this table."""
    PUBLIC = "public"
    """Operational and documentation routes: no credential, no tenant data."""
    CONSOLE = "console"
    """The web console's pages and forms: a session cookie opens them, never a bearer
    key or forged headers (its sessions, CSRF and team scoping: tests/console)."""


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None

    def kwargs(self) -> dict[str, Any]:
        headers = {"content-type": self.content_type} if self.content_type else {}
        if self.content is not None:
            return {"content": self.content, "headers": headers}
        if self.json is not None:
            return {"json": self.json, "headers": headers}
        return {"headers": headers}


Builder = Callable[[World, Side, str], Call]
"""(world, side, method) -> the call: `own` on team A's objects (fresh ones where the
call consumes them), `other` on team B's standing objects."""


@dataclass(frozen=True)
class RouteSpec:
    guard: Guard
    call: Builder | None = None
    success: int = 200
    cross: Literal["not_found", "own"] = "not_found"
    """`not_found`: team A's credential on team B's object is 404; `own`: the route
    names no object of another team (a list, a team's policy, a create), so it answers
    as for team A's own, and never shows team B's data."""
    cross_status: int | None = None
    """The status of the cross-team call when it is neither 404 nor `success`."""
    note: str = ""


def _of(world: World, side: Side) -> TeamObjects:
    return world.a if side == "own" else world.b


def _fixed(method: str, path: str, **kw: Any) -> Builder:
    return lambda world, side, _: Call(method, path, **kw)


# -- registry ---------------------------------------------------------------------------


def _models_create(world: World, side: Side, method: str) -> Call:
    return Call("POST", "/registry/models", json={"name": f"c-{uuid.uuid4().hex[:10]}"})


def _model(sub: str = "", **kw: Any) -> Builder:
    return lambda world, side, method: Call(
        method, f"/registry/models/{_of(world, side).model}{sub}", **kw
    )


def _model_delete(world: World, side: Side, method: str) -> Call:
    name = world.fresh_model() if side == "own" else world.b.model
    return Call("DELETE", f"/registry/models/{name}")


def _version_create(world: World, side: Side, method: str) -> Call:
    body = version_body(world.a.team, world.a.marker)
    return Call("POST", f"/registry/models/{_of(world, side).model}/versions", json=body)


def _version_delete(world: World, side: Side, method: str) -> Call:
    if side == "other":
        return Call("DELETE", f"/registry/models/{world.b.model}/versions/1")
    model = world.fresh_model()
    return Call("DELETE", f"/registry/models/{model}/versions/{world.fresh_version(model)}")


def _alias(world: World, side: Side, method: str) -> Call:
    owner = _of(world, side)
    body = {"version": 1} if method == "PUT" else None
    return Call(method, f"/registry/models/{owner.model}/aliases/{owner.alias}", json=body)


def _alias_delete(world: World, side: Side, method: str) -> Call:
    alias = world.fresh_alias() if side == "own" else world.b.alias
    return Call("DELETE", f"/registry/models/{_of(world, side).model}/aliases/{alias}")


def _upload_start(world: World, side: Side, method: str) -> Call:
    body = {
        "size_bytes": len(ARTIFACT),
        "sha256": hashlib.sha256(ARTIFACT).hexdigest(),
        "filename": "model.onnx",
    }
    return Call("POST", f"/registry/models/{_of(world, side).model}/uploads", json=body)


def _upload_complete(world: World, side: Side, method: str) -> Call:
    if side == "other":
        upload_id, etag = world.b.upload_id, '"0"'
    else:
        plan = world.upload(world.a.model)
        upload_id, etag = plan["upload_id"], plan["etag"]
    return Call(
        "POST",
        f"/registry/models/{_of(world, side).model}/uploads/{upload_id}/complete",
        json={"parts": [{"number": 1, "etag": etag}]},
    )


def _signed_part(world: World, side: Side, method: str) -> Call:
    if side == "other":
        path = f"/registry/artifacts/uploads/{world.b.upload_id}/parts/1"
        return Call("PUT", f"{path}?expires=4102444800&signature=forged", content=ARTIFACT)
    plan = world.as_team(
        world.a,
        "registry",
        "POST",
        f"/models/{world.a.model}/uploads",
        json={"size_bytes": len(ARTIFACT), "sha256": hashlib.sha256(ARTIFACT).hexdigest()},
    )
    url = urlsplit(plan["parts"][0]["url"])
    return Call("PUT", f"{url.path}?{url.query}", content=ARTIFACT)


def _signed_object(world: World, side: Side, method: str) -> Call:
    if side == "other":
        key = f"teams/{world.b.team}/models/{world.b.model}/x/model.onnx"
        return Call("GET", f"/registry/artifacts/objects/{key}?expires=4102444800&signature=forged")
    found = world.as_team(
        world.a, "registry", "GET", f"/models/{world.a.model}/versions/1/download"
    )
    url = urlsplit(found["url"])
    return Call("GET", f"{url.path}?{url.query}")


# -- MLflow -----------------------------------------------------------------------------


def _mlflow(
    sub: str, body: Callable[[World, TeamObjects], dict[str, Any]], *, query: bool = False
) -> Builder:
    def build(world: World, side: Side, method: str) -> Call:
        values = body(world, _of(world, side))
        if query or method == "GET":
            params = "&".join(f"{k}={quote(str(v))}" for k, v in values.items())
            return Call(method, f"{MLFLOW}/{sub}?{params}")
        return Call(method, f"{MLFLOW}/{sub}", json=values)

    return build


def _mlflow_fresh_model(world: World, side: Side, method: str) -> Call:
    name = world.fresh_model() if side == "own" else world.b.model
    return Call("DELETE", f"{MLFLOW}/registered-models/delete", json={"name": name})


def _mlflow_fresh_rename(world: World, side: Side, method: str) -> Call:
    # A model of its own: renaming the shared one would move it from under other routes.
    name = world.fresh_model() if side == "own" else world.b.model
    body = {"name": name, "new_name": f"r-{uuid.uuid4().hex[:8]}"}
    return Call("POST", f"{MLFLOW}/registered-models/rename", json=body)


def _mlflow_alias_delete(world: World, side: Side, method: str) -> Call:
    owner = _of(world, side)
    alias = world.fresh_alias() if side == "own" else owner.alias
    body = {"name": owner.model, "alias": alias}
    return Call("DELETE", f"{MLFLOW}/registered-models/alias", json=body)


def _mlflow_version_create(world: World, side: Side, method: str) -> Call:
    sha = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    tags = {
        "mlplane.sha256": sha,
        "mlplane.size_bytes": "1024",
        "mlplane.git_repository": "https://git.example.com/ml/fraud",
        "mlplane.commit_sha": sha[:40],
        "mlplane.ci_run_url": "https://ci.example.com/runs/2",
    }
    body = {
        "name": _of(world, side).model,
        "source": f"s3://models/{world.a.team}/{sha}/model.onnx",
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
    return Call("POST", f"{MLFLOW}/model-versions/create", json=body)


def _mlflow_version_delete(world: World, side: Side, method: str) -> Call:
    if side == "other":
        body = {"name": world.b.model, "version": "1"}
    else:
        model = world.fresh_model()
        body = {"name": model, "version": str(world.fresh_version(model))}
    return Call("DELETE", f"{MLFLOW}/model-versions/delete", json=body)


def _name(world: World, owner: TeamObjects) -> dict[str, Any]:
    return {"name": owner.model}


def _version(world: World, owner: TeamObjects) -> dict[str, Any]:
    return {"name": owner.model, "version": "1"}


def _search(world: World, owner: TeamObjects) -> dict[str, Any]:
    return {"filter": f"name='{owner.model}'"}


# -- builder, scanner, dead letters ------------------------------------------------------


def _build(sub: str = "") -> Builder:
    return lambda world, side, method: Call(
        method, f"/builder/builds/{_of(world, side).build_id}{sub}"
    )


def _rebuild(world: World, side: Side, method: str) -> Call:
    build_id = world.finished_build() if side == "own" else world.b.build_id
    return Call("POST", f"/builder/builds/{build_id}/rebuild")


POLICY = {"max_severity": "critical", "block_when_vulnerabilities_not_assessed": False}
MANIFEST = json.dumps(
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "matrix"}, "data": {"a": "b"}}
).encode()


def _exception_add(world: World, side: Side, method: str) -> Call:
    finding = f"CVE-2099-{uuid.uuid4().int % 100000:05d}"
    return Call("POST", "/scanner/policies/staging/exceptions", json=exception_body(finding))


def _exception_delete(world: World, side: Side, method: str) -> Call:
    if side == "other":
        return Call("DELETE", f"/scanner/policies/prod/exceptions/{world.b.finding_id}")
    return Call("DELETE", f"/scanner/policies/dev/exceptions/{world.fresh_exception()}")


def _vex(world: World, side: Side, method: str) -> Call:
    return Call("POST", "/scanner/policies/staging/vex", json=vex_document(_of(world, side).digest))


# -- deployer -----------------------------------------------------------------------------


def _deploy_request(world: World, side: Side, method: str) -> Call:
    # A new version each time: the same request again would answer 200, not 201.
    body = {"model": world.a.model, "version": world.deployable(), "environment": "dev"}
    return Call("POST", "/deployer/deployments", json=body)


def _deployment(sub: str = "") -> Builder:
    return lambda world, side, method: Call(
        method, f"/deployer/deployments/{_of(world, side).deployment_id}{sub}"
    )


def _approve(world: World, side: Side, method: str) -> Call:
    target = world.waiting_for_approval() if side == "own" else world.b.deployment_id
    return Call("POST", f"/deployer/deployments/{target}/approvals")


def _promote(world: World, side: Side, method: str) -> Call:
    target = world.committed_deployment() if side == "own" else world.b.deployment_id
    return Call("POST", f"/deployer/deployments/{target}/promote")


def _team_policy(world: World, side: Side, method: str) -> Call:
    # Team A's own rules written again: its relaxed staging and prod stay as they were.
    body = {
        "environments": [
            {"name": name, "rules": RELAXED_RULES.get(name, {})}
            for name in ("dev", "staging", "prod")
        ]
    }
    return Call(method, "/deployer/policies", json=body if method == "PUT" else None)


def _environment_policy(world: World, side: Side, method: str) -> Call:
    body = RELAXED_RULES["staging"] if method == "PUT" else None
    return Call(method, "/deployer/policies/staging", json=body)


def _replay(service: str) -> Builder:
    def build(world: World, side: Side, method: str) -> Call:
        # Team A replays nothing of its own here; team B's letter must stay where it is.
        ids = [] if side == "own" else [world.b.dead_letters[service]]
        return Call("POST", f"/{service}/dead-letters/replay", json={"ids": ids})

    return build


def _dead_letters(service: str) -> dict[tuple[str, str], RouteSpec]:
    guard = Guard.GATEWAY_ADMIN if service == "gateway" else Guard.ADMIN
    return {
        ("GET", f"/{service}/dead-letters"): RouteSpec(
            guard, _fixed("GET", f"/{service}/dead-letters?limit=1000"), cross="own"
        ),
        ("POST", f"/{service}/dead-letters/replay"): RouteSpec(
            guard, _replay(service), cross="own"
        ),
    }


R, W, A = Guard.READ, Guard.WRITE, Guard.ADMIN
CATCH_ALL = _fixed("GET", f"{MLFLOW}/experiments/list")

ROUTES: dict[tuple[str, str], RouteSpec] = {
    # registry: models, versions, aliases
    ("POST", "/registry/models"): RouteSpec(W, _models_create, 201, cross="own"),
    ("GET", "/registry/models"): RouteSpec(R, _fixed("GET", "/registry/models"), cross="own"),
    ("GET", "/registry/models/{name}"): RouteSpec(R, _model()),
    ("PATCH", "/registry/models/{name}"): RouteSpec(W, _model(json={"description": "changed"})),
    ("DELETE", "/registry/models/{name}"): RouteSpec(W, _model_delete, 204),
    ("POST", "/registry/models/{name}/versions"): RouteSpec(W, _version_create, 201),
    ("GET", "/registry/models/{name}/versions/{version}"): RouteSpec(R, _model("/versions/1")),
    ("PATCH", "/registry/models/{name}/versions/{version}"): RouteSpec(
        W, _model("/versions/1", json={"status_message": "changed"})
    ),
    ("DELETE", "/registry/models/{name}/versions/{version}"): RouteSpec(W, _version_delete, 204),
    ("GET", "/registry/versions"): RouteSpec(
        R,
        lambda world, side, m: Call("GET", f"/registry/versions?model={_of(world, side).model}"),
        cross="own",
    ),
    ("PUT", "/registry/models/{name}/aliases/{alias}"): RouteSpec(W, _alias),
    ("DELETE", "/registry/models/{name}/aliases/{alias}"): RouteSpec(W, _alias_delete, 204),
    ("GET", "/registry/models/{name}/aliases/{alias}"): RouteSpec(R, _alias),
    # registry: artifacts
    ("POST", "/registry/models/{name}/uploads"): RouteSpec(
        W, _upload_start, 201, cross="own", note="the key lies under the caller's own team"
    ),
    ("POST", "/registry/models/{name}/uploads/{upload_id}/complete"): RouteSpec(
        W, _upload_complete
    ),
    ("GET", "/registry/models/{name}/versions/{version}/download"): RouteSpec(
        R, _model("/versions/1/download")
    ),
    ("PUT", "/registry/artifacts/uploads/{upload_id}/parts/{number}"): RouteSpec(
        Guard.SIGNED_URL, _signed_part, cross_status=403
    ),
    ("GET", "/registry/artifacts/objects/{key:path}"): RouteSpec(
        Guard.SIGNED_URL, _signed_object, cross_status=403
    ),
    # registry: MLflow
    ("POST", f"{MLFLOW}/registered-models/create"): RouteSpec(
        W,
        lambda world, side, m: Call(
            "POST", f"{MLFLOW}/registered-models/create", json={"name": f"c-{uuid.uuid4().hex[:8]}"}
        ),
        cross="own",
    ),
    ("GET", f"{MLFLOW}/registered-models/get"): RouteSpec(
        R, _mlflow("registered-models/get", _name)
    ),
    ("GET", f"{MLFLOW}/registered-models/search"): RouteSpec(
        R, _mlflow("registered-models/search", _search), cross="own"
    ),
    ("PATCH", f"{MLFLOW}/registered-models/update"): RouteSpec(
        W,
        _mlflow(
            "registered-models/update", lambda w, o: {"name": o.model, "description": "changed"}
        ),
    ),
    ("POST", f"{MLFLOW}/registered-models/rename"): RouteSpec(W, _mlflow_fresh_rename),
    ("DELETE", f"{MLFLOW}/registered-models/delete"): RouteSpec(W, _mlflow_fresh_model),
    ("GET", f"{MLFLOW}/registered-models/get-latest-versions"): RouteSpec(
        R, _mlflow("registered-models/get-latest-versions", _name)
    ),
    ("POST", f"{MLFLOW}/registered-models/get-latest-versions"): RouteSpec(
        R, _mlflow("registered-models/get-latest-versions", _name)
    ),
    ("POST", f"{MLFLOW}/registered-models/set-tag"): RouteSpec(
        W, _mlflow("registered-models/set-tag", lambda w, o: {"name": o.model, "key": "k"})
    ),
    ("DELETE", f"{MLFLOW}/registered-models/delete-tag"): RouteSpec(
        W, _mlflow("registered-models/delete-tag", lambda w, o: {"name": o.model, "key": "k"})
    ),
    ("POST", f"{MLFLOW}/registered-models/alias"): RouteSpec(
        W,
        _mlflow(
            "registered-models/alias",
            lambda w, o: {"name": o.model, "alias": "mlf", "version": "1"},
        ),
    ),
    ("DELETE", f"{MLFLOW}/registered-models/alias"): RouteSpec(W, _mlflow_alias_delete),
    ("GET", f"{MLFLOW}/registered-models/alias"): RouteSpec(
        R, _mlflow("registered-models/alias", lambda w, o: {"name": o.model, "alias": o.alias})
    ),
    ("POST", f"{MLFLOW}/model-versions/create"): RouteSpec(W, _mlflow_version_create),
    ("GET", f"{MLFLOW}/model-versions/get"): RouteSpec(R, _mlflow("model-versions/get", _version)),
    ("GET", f"{MLFLOW}/model-versions/search"): RouteSpec(
        R, _mlflow("model-versions/search", _search), cross="own"
    ),
    ("PATCH", f"{MLFLOW}/model-versions/update"): RouteSpec(
        W,
        _mlflow(
            "model-versions/update",
            lambda w, o: {"name": o.model, "version": "1", "description": "changed"},
        ),
    ),
    ("DELETE", f"{MLFLOW}/model-versions/delete"): RouteSpec(W, _mlflow_version_delete),
    ("GET", f"{MLFLOW}/model-versions/get-download-uri"): RouteSpec(
        R, _mlflow("model-versions/get-download-uri", _version)
    ),
    ("POST", f"{MLFLOW}/model-versions/set-tag"): RouteSpec(
        W,
        _mlflow(
            "model-versions/set-tag",
            lambda w, o: {"name": o.model, "version": "1", "key": "k", "value": "v"},
        ),
    ),
    ("DELETE", f"{MLFLOW}/model-versions/delete-tag"): RouteSpec(
        W,
        _mlflow(
            "model-versions/delete-tag", lambda w, o: {"name": o.model, "version": "1", "key": "k"}
        ),
    ),
    ("POST", f"{MLFLOW}/model-versions/transition-stage"): RouteSpec(
        W,
        _mlflow(
            "model-versions/transition-stage",
            lambda w, o: {"name": o.model, "version": "1", "stage": "Production"},
        ),
        501,
        cross_status=501,
        note="stages are not offered: NOT_IMPLEMENTED for every team",
    ),
    **{
        (method, f"{MLFLOW}/{{path:path}}"): RouteSpec(
            R if method == "GET" else W,
            lambda world, side, m: Call(m, f"{MLFLOW}/experiments/list"),
            404,
            note="MLflow's ENDPOINT_NOT_FOUND for what the registry does not serve",
        )
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE")
    },
    # builder
    ("GET", "/builder/builds"): RouteSpec(
        R,
        lambda world, side, m: Call("GET", f"/builder/builds?model={_of(world, side).model}"),
        cross="own",
    ),
    ("GET", "/builder/builds/{build_id}"): RouteSpec(R, _build()),
    ("POST", "/builder/builds/{build_id}/rebuild"): RouteSpec(W, _rebuild, 202),
    # scanner
    ("GET", "/scanner/policies"): RouteSpec(R, _fixed("GET", "/scanner/policies"), cross="own"),
    ("GET", "/scanner/policies/{environment}"): RouteSpec(
        R, _fixed("GET", "/scanner/policies/prod"), cross="own"
    ),
    ("PUT", "/scanner/policies/{environment}"): RouteSpec(
        A, _fixed("PUT", "/scanner/policies/staging", json=POLICY), cross="own"
    ),
    ("POST", "/scanner/policies/{environment}/exceptions"): RouteSpec(
        A, _exception_add, 201, cross="own"
    ),
    ("DELETE", "/scanner/policies/{environment}/exceptions/{finding_id}"): RouteSpec(
        A, _exception_delete
    ),
    ("POST", "/scanner/policies/{environment}/vex"): RouteSpec(A, _vex, 201, cross="own"),
    ("GET", "/scanner/scans"): RouteSpec(R, _fixed("GET", "/scanner/scans"), cross="own"),
    ("GET", "/scanner/scans/{digest}"): RouteSpec(
        R, lambda world, side, m: Call("GET", f"/scanner/scans/{_of(world, side).digest}")
    ),
    ("GET", "/scanner/scans/{digest}/sbom"): RouteSpec(
        R,
        lambda world, side, m: Call("GET", f"/scanner/scans/{_of(world, side).digest}/sbom"),
        success=404,
        note="the world's images are never pulled, so no scan keeps an SBOM: the owner's "
        "answer is 404 as well; the download is tested in services/scanner",
    ),
    ("POST", "/scanner/manifests/scan"): RouteSpec(
        R,
        _fixed(
            "POST", "/scanner/manifests/scan", content=MANIFEST, content_type="application/json"
        ),
        cross="own",
        note="a read-only POST: models:read",
    ),
    # deployer
    ("POST", "/deployer/deployments"): RouteSpec(
        Guard.DEPLOY_WRITE, _deploy_request, 201, cross="own"
    ),
    ("GET", "/deployer/deployments"): RouteSpec(
        R, _fixed("GET", "/deployer/deployments?limit=500"), cross="own"
    ),
    ("GET", "/deployer/deployments/{deployment_id}"): RouteSpec(R, _deployment()),
    ("GET", "/deployer/deployments/{deployment_id}/approvals"): RouteSpec(
        R, _deployment("/approvals")
    ),
    ("POST", "/deployer/deployments/{deployment_id}/approvals"): RouteSpec(
        Guard.DEPLOY_APPROVE, _approve, note="someone else's prod deployment, waiting"
    ),
    ("POST", "/deployer/deployments/{deployment_id}/promote"): RouteSpec(
        Guard.DEPLOY_WRITE, _promote, 201, note="a committed dev deployment, to staging"
    ),
    ("POST", "/deployer/deployments/{deployment_id}/rollback"): RouteSpec(
        Guard.DEPLOY_WRITE, _deployment("/rollback"), 202
    ),
    ("GET", "/deployer/policies"): RouteSpec(R, _team_policy, cross="own"),
    ("PUT", "/deployer/policies"): RouteSpec(Guard.DEPLOY_ADMIN, _team_policy, cross="own"),
    ("GET", "/deployer/policies/{environment}"): RouteSpec(R, _environment_policy, cross="own"),
    ("PUT", "/deployer/policies/{environment}"): RouteSpec(
        Guard.DEPLOY_ADMIN, _environment_policy, cross="own"
    ),
    # dead letters of every service
    **_dead_letters("registry"),
    **_dead_letters("builder"),
    **_dead_letters("scanner"),
    **_dead_letters("deployer"),
    **_dead_letters("gateway"),
    # the gateway's own routes
    **{
        (method, path): RouteSpec(Guard.GATEWAY_OWN)
        for method, path in (
            ("POST", "/v1/keys"),
            ("GET", "/v1/keys"),
            ("DELETE", "/v1/keys/{key_id}"),
            ("PUT", "/v1/teams/{team}/webhook-secret"),
            ("POST", "/v1/teams/{team}/deployment-requests"),
            ("POST", "/v1/webhooks/github/{team}"),
            ("POST", "/v1/webhooks/gitlab/{team}"),
            ("POST", "/v1/events"),
            ("POST", "/v1/subscriptions"),
            ("GET", "/v1/subscriptions"),
            ("GET", "/v1/subscriptions/{subscription_id}"),
            ("DELETE", "/v1/subscriptions/{subscription_id}"),
            ("GET", "/v1/subscriptions/{subscription_id}/deliveries"),
            ("GET", "/v1/subscriptions/{subscription_id}/dead-letters"),
            ("POST", "/v1/subscriptions/{subscription_id}/dead-letters/{delivery_id}/redeliver"),
            ("GET", "/v1/events/stream"),
            # MLflow's webhooks API on the team's subscriptions (events:subscribe); its
            # cases: services/gateway/tests/integration/test_mlflow_webhooks_auth.py.
            *(
                (method, f"{prefix}/2.0/mlflow/webhooks{suffix}")
                for prefix in ("/api", "/ajax-api")
                for method, suffix in (
                    ("GET", ""),
                    ("POST", ""),
                    ("GET", "/{webhook_id}"),
                    ("PATCH", "/{webhook_id}"),
                    ("DELETE", "/{webhook_id}"),
                    ("POST", "/{webhook_id}/test"),
                )
            ),
        )
    },
    **{
        (method, f"{prefix}/{{path:path}}"): RouteSpec(Guard.FACADE)
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        for prefix in (
            "/v1/registry",
            "/v1/scanner",
            "/v1/builder",
            "/v1/deployer",
            "/v1/drift",
            "/api/2.0/mlflow",
            "/ajax-api/2.0/mlflow",
        )
    },
    **{
        ("GET", path): RouteSpec(Guard.PUBLIC, _fixed("GET", path))
        for path in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/docs/oauth2-redirect",
            "/redoc",
        )
    },
    **{
        ("HEAD", path): RouteSpec(Guard.PUBLIC, _fixed("HEAD", path))
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    },
    # the web console, as its routers declare it
    **{
        (method, str(route.path)): RouteSpec(Guard.CONSOLE)
        for router in (console_api.root_router, console_api.router)
        for route in router.routes
        for method in getattr(route, "methods", None) or ()
    },
}


def table_key(method: str, path: str) -> tuple[str, str]:
    """The entry of a served route (the ajax MLflow prefix shares the api one's)."""
    if path.startswith(AJAX_MLFLOW):
        path = MLFLOW + path.removeprefix(AJAX_MLFLOW)
    return method, path


def served_path(call_path: str, route_path: str) -> str:
    """`call_path` under the prefix `route_path` is served at (ajax MLflow or not)."""
    if route_path.startswith(AJAX_MLFLOW) and call_path.startswith(MLFLOW):
        return AJAX_MLFLOW + call_path.removeprefix(MLFLOW)
    return call_path


def gateway_path(direct: str) -> str:
    """Where the gateway serves the service path `direct`: its MLflow routes for the
    registry's MLflow API, else its facade `/v1/<service>/...`."""
    for prefix, public in ((MLFLOW, "/api/2.0/mlflow"), (AJAX_MLFLOW, "/ajax-api/2.0/mlflow")):
        if direct.startswith(prefix):
            return public + direct.removeprefix(prefix)
    return "/v1" + direct


def service_of(path: str) -> str:
    return path.strip("/").split("/", 1)[0]
