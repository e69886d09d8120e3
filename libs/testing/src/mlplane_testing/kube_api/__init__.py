"""A stand-in for the Kubernetes API server's custom-objects endpoints, and a tiny Argo CD.

No API server can run here (see TESTING.md), so the deployer's Kubernetes client is
tested against this: a local HTTP server on 127.0.0.1 that answers
`/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications[/{name}]` the way the API
server does (resourceVersion, 404/409/410 `Status` objects, server-side apply with
field managers, JSON-lines watch streams), with hooks a test uses to inject faults,
drop watches and expire old resourceVersions, plus `ArgoCdController`, which moves
each Application's status from what is in a local GitOps repository.

    async with KubeApiStandIn().serve() as kube:
        async with kube.argocd(repos={url: bare_repo}).running():
            ...  # point kubernetes-asyncio at kube.url
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from mlplane_testing.http_server import serve
from mlplane_testing.kube_api.app import Fault, KubeApiApp
from mlplane_testing.kube_api.argocd import ArgoCdController, next_status
from mlplane_testing.kube_api.store import ApiError, ApplicationStore, Object

__all__ = [
    "ApiError",
    "ApplicationStore",
    "ArgoCdController",
    "Fault",
    "KubeApiStandIn",
    "next_status",
]


class KubeApiStandIn:
    """One stand-in API server: its store, its HTTP app and the test hooks on both."""

    def __init__(self) -> None:
        self.store = ApplicationStore()
        self.http = KubeApiApp(self.store)
        self.url = ""

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[KubeApiStandIn]:
        """Served on a free port of 127.0.0.1 for the block; `url` is its base URL."""
        async with serve(self.http.app) as url:
            self.url = url
            yield self

    def argocd(
        self,
        *,
        repos: Mapping[str, Path] | None = None,
        interval_s: float = 0.02,
        degraded_markers: Iterable[str] = (),
    ) -> ArgoCdController:
        """An Argo CD controller over this server's Applications (start it with `running()`);
        a rollout whose files hold one of `degraded_markers` ends Degraded."""
        return ArgoCdController(
            self.store, repos=repos, interval_s=interval_s, degraded_markers=degraded_markers
        )

    def fail_next(
        self, verb: str, code: int, reason: str, *, times: int = 1, retry_after_s: int | None = None
    ) -> None:
        """Answer the next `times` requests of `verb` (apply, create, get, list, watch,
        update, patch, delete) with `code` instead of the real answer."""
        for _ in range(times):
            self.http.faults.append(Fault(verb, code, reason, retry_after_s))

    def count(self, verb: str) -> int:
        """How many `verb` requests arrived (faulted ones included)."""
        return self.http.requests.count(verb)

    def drop_watches(self) -> int:
        """Tear every open watch connection down mid-stream; returns how many there were."""
        return self.http.drop_watches()

    def expire_history(self) -> int:
        """Compact: a watch from any resourceVersion so far now gets 410 Gone."""
        return self.store.compact()

    def set_status(self, namespace: str, name: str, status: Object) -> Object:
        """Write `.status` as a controller would (a new resourceVersion, a MODIFIED event)."""
        return self.store.write_status(namespace, name, status, "test")

    def update_as(self, manager: str, namespace: str, name: str, change: Object) -> Object:
        """Another actor (kubectl edit, the Argo CD UI) writing `change` into the object."""
        current = self.store.get(namespace, name)

        def merge(into: Object, extra: Object) -> None:
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    merge(into[key], value)
                else:
                    into[key] = value

        merge(current, change)
        return self.store.update(namespace, name, current, manager)
