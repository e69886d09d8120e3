"""Watching the deployer's Applications: list, then watch from the list's resourceVersion.

As an informer does: a dropped or timed-out watch resumes from the last
resourceVersion seen (events are neither lost nor repeated); a 410 Gone (that
resourceVersion was compacted away) relists, reporting every listed Application
as `RELISTED` and those gone meanwhile as `DELETED`, then watches from the new list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from mlplane_deployer.argocd.client import GROUP, PLURAL, VERSION, Backoff
from mlplane_deployer.argocd.phase_mapping import ArgoStatus

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "RELISTED"]
MANAGED_BY: Final = "app.kubernetes.io/managed-by=mlplane-deployer"


@dataclass(frozen=True, slots=True)
class ApplicationEvent:
    """One change to one Application, in the order the API server made them."""

    type: EventType
    name: str
    resource_version: str
    status: ArgoStatus
    labels: dict[str, str]
    object: dict[str, Any]


def _event(kind: EventType, obj: dict[str, Any]) -> ApplicationEvent:
    meta = obj.get("metadata") or {}
    return ApplicationEvent(
        type=kind,
        name=meta.get("name", ""),
        resource_version=str(meta.get("resourceVersion", "")),
        status=ArgoStatus.of(obj),
        labels=dict(meta.get("labels") or {}),
        object=obj,
    )


class ApplicationWatch:
    """Every change to the Applications in `namespace` matching `label_selector`, forever."""

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str = "argocd",
        label_selector: str | None = MANAGED_BY,
        watch_timeout_s: int = 300,
        page_size: int = 500,
        backoff: Backoff = Backoff(attempts=1_000_000, first_s=0.1, max_s=10.0),
    ) -> None:
        self._objects = CustomObjectsApi(api)
        self.namespace = namespace
        self._selector = label_selector
        self._watch_timeout_s = watch_timeout_s
        self._page_size = page_size
        self._backoff = backoff
        self.resource_version: str | None = None
        """The last resourceVersion seen; a new watch starts after it."""
        self.relists = 0
        self.resumes = 0
        self._known: dict[str, str] = {}

    def _selector_kwargs(self) -> dict[str, Any]:
        return {"label_selector": self._selector} if self._selector else {}

    def _continue(self, token: str | None) -> dict[str, Any]:
        return {"_continue": token} if token else {}

    async def _list(self) -> list[ApplicationEvent]:
        """A consistent list, page by page; sets `resource_version` to the list's."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._objects.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                limit=self._page_size,
                **self._selector_kwargs(),
                **self._continue(token),
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                self.resource_version = str(meta["resourceVersion"])
                break
        events = [_event("RELISTED", obj) for obj in items]
        seen = {e.name for e in events}
        gone = [
            ApplicationEvent("DELETED", name, self.resource_version, ArgoStatus(), {}, {})
            for name in sorted(set(self._known) - seen)
        ]
        self._known = {e.name: e.resource_version for e in events}
        return gone + events

    async def events(self) -> AsyncIterator[ApplicationEvent]:
        """List, then watch; resumes and relists by itself. Raises only on cancellation
        (and on errors no retry can fix: 401, 403, 404 for the resource)."""
        delays = self._backoff.delays()
        need_list = True
        while True:
            try:
                if need_list:
                    for event in await self._list():
                        yield event
                    need_list = False
                async for event in self._watch_once():
                    delays = self._backoff.delays()
                    yield event
                # A clean end (the server's timeoutSeconds): watch again from where we are.
                continue
            except ApiException as error:
                if error.status == 410:
                    log.info(
                        "argocd watch: resourceVersion %s expired; relisting", self.resource_version
                    )
                    self.relists += 1
                    need_list = True
                    continue
                if error.status in (401, 403, 404):
                    raise
                failure: BaseException = error
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = error
            except Exception as error:
                # A malformed line from the stream: resume from the last good event.
                log.warning("argocd watch: unexpected error; resuming", exc_info=True)
                failure = error
            self.resumes += 1
            delay = next(delays, self._backoff.max_s)
            log.info(
                "argocd watch dropped (%s); resuming from %s in %.2fs",
                failure,
                self.resource_version,
                delay,
            )
            await asyncio.sleep(delay)

    async def _watch_once(self) -> AsyncIterator[ApplicationEvent]:
        async with Watch() as watch:
            stream = watch.stream(
                self._objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=self.resource_version,
                timeout_seconds=self._watch_timeout_s,
                allow_watch_bookmarks=True,
                **self._selector_kwargs(),
            )
            async for raw in stream:
                kind = raw["type"]
                obj = raw["raw_object"]
                rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                if rv:
                    self.resource_version = rv
                if kind == "BOOKMARK":
                    continue
                event = _event(kind, obj)
                if kind == "DELETED":
                    self._known.pop(event.name, None)
                else:
                    self._known[event.name] = rv
                yield event
