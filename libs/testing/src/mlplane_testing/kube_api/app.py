"""The stand-in's HTTP face: the custom-objects endpoints of argoproj.io/v1alpha1 applications.

Answers as the API server does: `Status` objects for errors, `ApplicationList` with a
resourceVersion, server-side apply, and `?watch=true` streams of JSON-lines events.
A watch from a compacted resourceVersion gets one `ERROR` event carrying a 410
`Status` and ends, as the real server does.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mlplane_testing.kube_api.store import (
    API_VERSION,
    GROUP,
    PLURAL,
    VERSION,
    ApiError,
    ApplicationStore,
    Object,
    Watcher,
)

BASE = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Fault:
    """An answer given instead of the real one to the next request of `verb`."""

    verb: str
    code: int
    reason: str
    retry_after_s: int | None = None


class WatchDropped(Exception):
    """Raised inside a watch stream to tear its connection down mid-response."""


def _labels(selector: str | None) -> dict[str, str]:
    if not selector:
        return {}
    pairs = (part.split("=", 1) for part in selector.split(",") if part)
    return {k.strip(): v.strip().lstrip("=") for k, v in pairs}


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _error(error: ApiError, name: str | None = None) -> JSONResponse:
    return JSONResponse(error.status(name), status_code=error.code)


class KubeApiApp:
    """The ASGI app over one `ApplicationStore`; test hooks inject faults and drop watches."""

    def __init__(self, store: ApplicationStore) -> None:
        self.store = store
        self.faults: deque[Fault] = deque()
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route(BASE, self._collection, methods=["GET", "POST"]),
                Route(f"{BASE}/{{name}}", self._item, methods=["GET", "PUT", "PATCH", "DELETE"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH"]),
            ]
        )

    def drop_watches(self) -> int:
        """Tear every open watch connection down mid-stream; returns how many."""
        watchers = list(self.store.watchers)
        for watcher in watchers:
            watcher.queue.put_nowait(None)
        return len(watchers)

    def _fault(self, verb: str) -> Response | None:
        self.requests.append(verb)
        for fault in self.faults:
            if fault.verb == verb:
                self.faults.remove(fault)
                headers = {}
                if fault.retry_after_s is not None:
                    headers["Retry-After"] = str(fault.retry_after_s)
                error = ApiError(fault.code, fault.reason, f"injected {fault.code} {fault.reason}")
                return JSONResponse(error.status(), status_code=fault.code, headers=headers)
        return None

    async def _unknown(self, request: Request) -> Response:
        return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))

    async def _body(self, request: Request) -> Object:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            # kubernetes-asyncio sends apply bodies as JSON, which is YAML too.
            raise ApiError(400, "BadRequest", f"this stand-in reads JSON bodies: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not an object")
        return body

    async def _collection(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        query = request.query_params
        try:
            if request.method == "POST":
                if (fault := self._fault("create")) is not None:
                    return fault
                body = await self._body(request)
                manager = query.get("fieldManager") or "unknown"
                return JSONResponse(self.store.create(namespace, body, manager), status_code=201)
            if query.get("watch", "").lower() in ("true", "1"):
                if (fault := self._fault("watch")) is not None:
                    return fault
                return self._watch(namespace, request)
            if (fault := self._fault("list")) is not None:
                return fault
            return JSONResponse(self._list(namespace, request))
        except ApiError as error:
            return _error(error)

    def _list(self, namespace: str, request: Request) -> Object:
        query = request.query_params
        rv = query.get("resourceVersion")
        if rv and query.get("resourceVersionMatch") == "Exact" and int(rv) < self.store.compacted:
            raise ApiError(410, "Expired", f"too old resource version: {rv}")
        items = self.store.matching(namespace, _labels(query.get("labelSelector")))
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items)
        meta: Object = {"resourceVersion": str(self.store.resource_version)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return {
            "apiVersion": API_VERSION,
            "kind": "ApplicationList",
            "metadata": meta,
            "items": items[start : start + limit],
        }

    def _watch(self, namespace: str, request: Request) -> Response:
        query = request.query_params
        watcher = Watcher(namespace, _labels(query.get("labelSelector")))
        rv = query.get("resourceVersion")
        timeout = float(query.get("timeoutSeconds") or 0) or None
        backlog: list[tuple[str, Object]]
        expired: ApiError | None = None
        if not rv or rv == "0":
            backlog = [("ADDED", obj) for obj in self.store.matching(namespace, watcher.labels)]
        else:
            try:
                backlog = [e for e in self.store.events_after(int(rv)) if watcher.wants(e[1])]
            except ApiError as error:
                backlog, expired = [], error
        if expired is None:
            # Registered in the same step as the backlog is read: no event falls between.
            self.store.watchers.add(watcher)

        async def lines() -> AsyncIterator[bytes]:
            try:
                if expired is not None:
                    yield _line("ERROR", expired.status())
                    return
                for kind, obj in backlog:
                    yield _line(kind, obj)
                async with asyncio.timeout(timeout):
                    while True:
                        item = await watcher.queue.get()
                        if item is None:
                            raise WatchDropped("the test dropped this watch")
                        yield _line(*item)
            except TimeoutError:
                return
            finally:
                self.store.watchers.discard(watcher)

        return StreamingResponse(lines(), media_type="application/json")

    async def _item(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        query = request.query_params
        manager = query.get("fieldManager")
        try:
            if request.method == "GET":
                if (fault := self._fault("get")) is not None:
                    return fault
                return JSONResponse(self.store.get(namespace, name))
            if request.method == "DELETE":
                if (fault := self._fault("delete")) is not None:
                    return fault
                return JSONResponse(self.store.delete(namespace, name))
            if request.method == "PUT":
                if (fault := self._fault("update")) is not None:
                    return fault
                body = await self._body(request)
                return JSONResponse(self.store.update(namespace, name, body, manager or "unknown"))
            return await self._patch(request, namespace, name, manager)
        except ApiError as error:
            return _error(error, name)

    async def _patch(
        self, request: Request, namespace: str, name: str, manager: str | None
    ) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        force = request.query_params.get("force", "").lower() in ("true", "1")
        if kind == APPLY:
            if (fault := self._fault("apply")) is not None:
                return fault
            if not manager:
                raise ApiError(
                    400,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io is invalid: fieldManager: "
                    "Required value: is required for apply patch",
                )
            body = await self._body(request)
            obj, created = self.store.apply(namespace, name, body, manager, force=force)
            return JSONResponse(obj, status_code=201 if created else 200)
        if force:
            raise ApiError(
                422, "Invalid", "force: Forbidden: may not be specified for non-apply patch"
            )
        if kind == MERGE:
            if (fault := self._fault("patch")) is not None:
                return fault
            current = self.store.get(namespace, name)
            patched = _merge_patch(current, await self._body(request))
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return JSONResponse(self.store.update(namespace, name, patched, manager or "unknown"))
        raise ApiError(415, "UnsupportedMediaType", f"the stand-in does not take {kind!r} patches")


def _line(kind: str, obj: Object) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()
