"""Argo CD `Application`s through the Kubernetes API: server-side apply, read, delete.

One Application per model and environment (`render.application` builds it). The
deployer applies it with its own field manager, so repeating the same apply is no
change and fields other actors own (Argo CD's `status`, an operator's annotation)
are left alone. When another manager owns a field the deployer sets differently
(someone edited the spec by hand), the deployer takes it back with `force`: the
GitOps repository and the deployer's rendering are the truth for the spec.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

import aiohttp
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from mlplane_deployer.argocd.errors import (
    ApplicationOwnedElsewhere,
    ApplicationRejected,
    ArgoCdNotInstalled,
    ArgoCdUnavailable,
)

log = logging.getLogger(__name__)

GROUP: Final = "argoproj.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "applications"
API_VERSION: Final = f"{GROUP}/{VERSION}"
APPLY_PATCH: Final = "application/apply-patch+yaml"
FIELD_MANAGER: Final = "mlplane-deployer"
_APPLY_PATCH: Final[dict[str, Any]] = {"_content_type": APPLY_PATCH}
_RETRYABLE: Final = frozenset({409, 429, 500, 502, 503, 504})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter; `attempts` counts the first try."""

    attempts: int = 6
    first_s: float = 0.2
    factor: float = 2.0
    max_s: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        for _ in range(self.attempts - 1):
            yield random.uniform(delay / 2, delay)
            delay = min(delay * self.factor, self.max_s)


@dataclass(frozen=True, slots=True)
class AppliedApplication:
    """An Application as the API server holds it after an apply."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    created: bool
    object: dict[str, Any]


def status_body(error: ApiException) -> dict[str, Any]:
    """The `Status` object an API error carries ({} when the body is not one)."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _field_conflicts(error: ApiException) -> list[str]:
    causes = (status_body(error).get("details") or {}).get("causes") or []
    return [
        f"{c.get('field')} ({c.get('message')})"
        for c in causes
        if c.get("type") == "FieldManagerConflict"
    ]


def _retryable(error: ApiException) -> bool:
    # A 409 is worth retrying when the object moved under the write ("Conflict"), not
    # when it already exists or another field manager owns what we set.
    if error.status == 409:
        return status_body(error).get("reason") != "AlreadyExists" and not _field_conflicts(error)
    return error.status in _RETRYABLE


def _retry_after(error: ApiException) -> float | None:
    headers: Any = error.headers or {}
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        message = status_body(error).get("message") or error.reason
        return f"{error.status} {message}"
    return f"{type(error).__name__}: {error}"


class ArgoCdApplications:
    """The deployer's Argo CD Applications in one namespace (Argo CD's, usually `argocd`).

    Built by the composition root around a kubernetes-asyncio `ApiClient` it owns.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str = "argocd",
        field_manager: str = FIELD_MANAGER,
        force_conflicts: bool = True,
        backoff: Backoff = Backoff(),
        request_timeout_s: float = 30.0,
    ) -> None:
        self._objects = CustomObjectsApi(api)
        self.namespace = namespace
        self._field_manager = field_manager
        self._force_conflicts = force_conflicts
        self._backoff = backoff
        self._timeout = request_timeout_s

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call` until it answers, retrying 409, 429, 5xx and broken connections."""
        last: BaseException | None = None
        for delay in (*self._backoff.delays(), None):
            try:
                return await call()
            except ApiException as error:
                if not _retryable(error):
                    raise
                last = error
                delay = max(delay or 0.0, _retry_after(error) or 0.0) if delay is not None else None
            except (aiohttp.ClientError, TimeoutError) as error:
                last = error
            if delay is None:
                break
            log.info("argocd: %s answered %s; retrying in %.2fs", what, _describe(last), delay)
            await asyncio.sleep(delay)
        assert last is not None
        raise ArgoCdUnavailable(
            f"{what}: the Kubernetes API kept failing: {_describe(last)}",
            attempts=self._backoff.attempts,
        ) from last

    async def ensure_application(self, manifest: dict[str, Any]) -> AppliedApplication:
        """Make the cluster hold `manifest` (an argoproj.io/v1alpha1 Application) as applied.

        Server-side apply under this client's field manager; a field another manager
        owns with a different value is taken back with `force` (unless the client was
        built with `force_conflicts=False`). When the apply answers 404 the
        Application is created. 409 conflicts, 429 and 5xx are retried with backoff.

        Raises `ApplicationRejected` (not an Application, or refused as invalid),
        `ApplicationOwnedElsewhere` (a field conflict and forcing not allowed),
        `ArgoCdNotInstalled` (no Application resource in the cluster) and
        `ArgoCdUnavailable` (the API kept failing).
        """
        name = self._validated_name(manifest)
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
        force = False
        while True:
            try:
                return await self._retrying(
                    f"apply {name}", partial(self._apply, name, body, force)
                )
            except ApiException as error:
                if error.status == 404:
                    created = await self._create_after_404(name, body)
                    if created is not None:
                        return created
                    continue  # created by someone else meanwhile: apply over it
                conflicts = _field_conflicts(error)
                if conflicts and not force and self._force_conflicts:
                    log.warning(
                        "argocd: taking back fields of %s owned elsewhere: %s",
                        name,
                        ", ".join(conflicts),
                    )
                    force = True
                    continue
                if conflicts:
                    raise ApplicationOwnedElsewhere(
                        f"Application {name} has fields owned by another manager",
                        conflicts=conflicts,
                    ) from error
                raise self._rejected(name, error) from error

    async def _apply(self, name: str, body: dict[str, Any], force: bool) -> AppliedApplication:
        data, status, _ = await self._objects.patch_namespaced_custom_object_with_http_info(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            body,
            field_manager=self._field_manager,
            force=force,
            _request_timeout=self._timeout,
            # Not in the stubs, but what selects the apply patch type at run time.
            **_APPLY_PATCH,
        )
        if data is None:
            # The generated client decodes only 200 answers; a 201 (created) comes empty.
            data = await self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=self._timeout
            )
        return _applied(data, created=status == 201)

    async def _create_after_404(self, name: str, body: dict[str, Any]) -> AppliedApplication | None:
        try:
            data = await self._retrying(
                f"create {name}",
                lambda: self._objects.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    body,
                    field_manager=self._field_manager,
                    _request_timeout=self._timeout,
                ),
            )
        except ApiException as error:
            if error.status == 409 and status_body(error).get("reason") == "AlreadyExists":
                return None
            if error.status == 404:
                raise ArgoCdNotInstalled(
                    f"the cluster has no {PLURAL}.{GROUP} in namespace {self.namespace}: "
                    f"{_describe(error)}"
                ) from error
            raise self._rejected(name, error) from error
        return _applied(data, created=True)

    async def get_application(self, name: str) -> dict[str, Any] | None:
        """The Application as the API server holds it, or None when there is none.

        Raises `ArgoCdUnavailable` when the API kept failing.
        """
        try:
            data: dict[str, Any] = await self._retrying(
                f"get {name}",
                lambda: self._objects.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=self._timeout
                ),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._rejected(name, error) from error
        return data

    async def delete_application(self, name: str) -> bool:
        """Ask for the Application's deletion; False when there was none.

        With Argo CD's resources finalizer the Application goes once Argo CD has
        deleted what it deployed; a watch sees it go. Raises `ArgoCdUnavailable`.
        """
        try:
            await self._retrying(
                f"delete {name}",
                lambda: self._objects.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=self._timeout
                ),
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise self._rejected(name, error) from error
        return True

    def _validated_name(self, manifest: dict[str, Any]) -> str:
        if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != "Application":
            raise ApplicationRejected(
                f"not an {API_VERSION} Application: {manifest.get('apiVersion')} "
                f"{manifest.get('kind')}"
            )
        name = (manifest.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ApplicationRejected("the Application has no metadata.name")
        return name

    def _rejected(self, name: str, error: ApiException) -> ApplicationRejected:
        return ApplicationRejected(
            f"the Kubernetes API refused Application {name}: {_describe(error)}",
            kube_status=error.status,
        )


def _applied(data: dict[str, Any], *, created: bool) -> AppliedApplication:
    meta = data["metadata"]
    return AppliedApplication(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta.get("uid", ""),
        resource_version=meta["resourceVersion"],
        generation=int(meta.get("generation", 0)),
        created=created,
        object=data,
    )
