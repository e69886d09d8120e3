"""The stand-in's object store: what etcd and the API server's registry do for one resource.

One global resourceVersion counter, a bounded event history that `compact()` can cut
(a watch from before the cut gets 410 Gone, as after an etcd compaction), field
ownership per field manager for server-side apply, and fan-out to open watches.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Object = dict[str, Any]
Path = tuple[str, ...]

API_VERSION = "argoproj.io/v1alpha1"
KIND = "Application"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
# Fields the API server owns: never part of anyone's applied configuration.
_SERVER_FIELDS = frozenset(
    {
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "managedFields",
        "deletionTimestamp",
    }
)


class ApiError(Exception):
    """An API error answered as a `Status` object with `code`, `reason` and `message`."""

    def __init__(
        self, code: int, reason: str, message: str, *, causes: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.causes = code, reason, message, causes

    def status(self, name: str | None = None) -> Object:
        details: Object = {"group": GROUP, "kind": PLURAL}
        if name is not None:
            details["name"] = name
        if self.causes:
            details["causes"] = self.causes
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": details,
            "code": self.code,
        }


def not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{PLURAL}.{GROUP} "{name}" not found')


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def leaves(value: Object, prefix: Path = ()) -> dict[Path, Any]:
    """Every leaf of `value` by path; lists are atomic, as in Argo CD's CRD schema."""
    out: dict[Path, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(leaves(item, (*prefix, key)))
        else:
            out[(*prefix, key)] = item
    return out


def _owned_leaves(obj: Object) -> dict[Path, Any]:
    meta = {
        k: v
        for k, v in obj.get("metadata", {}).items()
        if k not in _SERVER_FIELDS and k not in ("name", "namespace")
    }
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    return leaves({"metadata": meta, **rest})


def _set(obj: Object, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = copy.deepcopy(value)


def _remove(obj: Object, path: Path) -> None:
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    # Drop maps left empty by the removal, as a structured merge does.
    for depth in range(len(path) - 1, 0, -1):
        if not parents[depth]:
            parents[depth - 1].pop(path[depth - 1], None)


def _fields_v1(paths: set[Path]) -> Object:
    tree: Object = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


@dataclass(eq=False)
class Watcher:
    namespace: str
    labels: dict[str, str]
    queue: asyncio.Queue[tuple[str, Object] | None] = field(default_factory=lambda: asyncio.Queue())

    def wants(self, obj: Object) -> bool:
        meta = obj["metadata"]
        have = meta.get("labels") or {}
        return meta["namespace"] == self.namespace and all(
            have.get(k) == v for k, v in self.labels.items()
        )


class ApplicationStore:
    """Applications by (namespace, name) with resourceVersions, history and field owners."""

    def __init__(self, history: int = 100_000) -> None:
        self._rv = 0
        self._objects: dict[tuple[str, str], Object] = {}
        # Per object: manager -> (operation, owned paths).
        self._owners: dict[tuple[str, str], dict[str, tuple[str, set[Path]]]] = {}
        self._history: deque[tuple[int, str, Object]] = deque(maxlen=history)
        self._compacted = 0
        self.watchers: set[Watcher] = set()

    # -- reads ---------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted(self) -> int:
        """Events at or before this resourceVersion are gone (410 for a watch from there)."""
        return max(self._compacted, self._history[0][0] - 1 if self._history else self._rv)

    def get(self, namespace: str, name: str) -> Object:
        obj = self._objects.get((namespace, name))
        if obj is None:
            raise not_found(name)
        return copy.deepcopy(obj)

    def all(self) -> list[Object]:
        return [copy.deepcopy(obj) for _, obj in sorted(self._objects.items())]

    def matching(self, namespace: str, labels: dict[str, str]) -> list[Object]:
        probe = Watcher(namespace, labels)
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(self._objects.items())
            if key[0] == namespace and probe.wants(obj)
        ]

    def events_after(self, rv: int) -> list[tuple[str, Object]]:
        if rv < self.compacted:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted})")
        return [(kind, obj) for at, kind, obj in self._history if at > rv]

    def compact(self) -> int:
        """Forget every event so far; returns the resourceVersion history now starts after."""
        self._history.clear()
        self._compacted = self._rv
        return self._compacted

    # -- writes --------------------------------------------------------------------

    def _emit(self, kind: str, obj: Object) -> None:
        snapshot = copy.deepcopy(obj)
        self._history.append((self._rv, kind, snapshot))
        for watcher in list(self.watchers):
            if watcher.wants(snapshot):
                watcher.queue.put_nowait((kind, snapshot))

    def _stamp(self, key: tuple[str, str], obj: Object) -> None:
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        meta["managedFields"] = [
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": API_VERSION,
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(paths),
            }
            for manager, (operation, paths) in sorted(self._owners.get(key, {}).items())
            if paths
        ]

    def _spec_changed(self, before: Object, after: Object) -> bool:
        return before.get("spec") != after.get("spec")

    def create(
        self, namespace: str, body: Object, manager: str, operation: str = "Update"
    ) -> Object:
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value: name is required")
        key = (namespace, name)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{PLURAL}.{GROUP} "{name}" already exists')
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = API_VERSION, KIND
        obj["metadata"] = {
            **{k: v for k, v in meta.items() if k not in _SERVER_FIELDS},
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now(),
            "generation": 1,
        }
        self._owners[key] = {manager: (operation, set(_owned_leaves(obj)))}
        self._objects[key] = obj
        self._stamp(key, obj)
        self._emit("ADDED", obj)
        return copy.deepcopy(obj)

    def update(self, namespace: str, name: str, body: Object, manager: str) -> Object:
        """PUT: a whole new object; `metadata.resourceVersion` must be the current one."""
        key = (namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if not rv:
            raise ApiError(
                422,
                "Invalid",
                f'{KIND}.{GROUP} "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
            )
        if rv != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {PLURAL}.{GROUP} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        return self._replace(key, body, manager, "Update")

    def _replace(self, key: tuple[str, str], body: Object, manager: str, operation: str) -> Object:
        current = self._objects[key]
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = API_VERSION, KIND
        server = {k: v for k, v in current["metadata"].items() if k in _SERVER_FIELDS}
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
        obj["metadata"] = {**meta, **server, "name": key[1], "namespace": key[0]}
        if "deletionTimestamp" in current["metadata"] and not meta.get("finalizers"):
            return self._finalize(key)
        before, after = _owned_leaves(current), _owned_leaves(obj)
        changed = {p for p in after if before.get(p, object()) != after[p]}
        owners = self._owners.setdefault(key, {})
        for other, (op, paths) in owners.items():
            owners[other] = (op, (paths - changed) & set(after))
        op, mine = owners.get(manager, (operation, set()))
        owners[manager] = (operation, (mine & set(after)) | changed)
        return self._commit(key, current, obj)

    def _commit(self, key: tuple[str, str], current: Object, obj: Object) -> Object:
        if obj == current:
            return copy.deepcopy(obj)
        if self._spec_changed(current, obj):
            obj["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        self._objects[key] = obj
        self._stamp(key, obj)
        self._emit("MODIFIED", obj)
        return copy.deepcopy(obj)

    def apply(
        self, namespace: str, name: str, config: Object, manager: str, *, force: bool
    ) -> tuple[Object, bool]:
        """Server-side apply; returns the object and whether it was created.

        Raises a 409 `Conflict` with `FieldManagerConflict` causes when another manager
        owns a field this configuration sets to a different value, unless `force`.
        """
        meta = config.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        if config.get("apiVersion") != API_VERSION or config.get("kind") != KIND:
            raise ApiError(400, "BadRequest", f"apply needs apiVersion {API_VERSION}, kind {KIND}")
        key = (namespace, name)
        applied = _owned_leaves({**config, "metadata": {**meta, "name": name}})
        applied.pop(("metadata", "namespace"), None)
        if key not in self._objects:
            body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}}
            for path, value in applied.items():
                _set(body, path, value)
            return self.create(namespace, body, manager, "Apply"), True
        current = self._objects[key]
        before = _owned_leaves(current)
        owners = self._owners.setdefault(key, {})
        conflicts = [
            (other, path)
            for other, (_, paths) in owners.items()
            if other != manager
            for path in paths & set(applied)
            if before.get(path, object()) != applied[path]
        ]
        if conflicts and not force:
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(conflicts)} conflict(s)",
                causes=[
                    {
                        "type": "FieldManagerConflict",
                        "message": f'conflict with "{other}"',
                        "field": "." + ".".join(path),
                    }
                    for other, path in conflicts
                ],
            )
        obj = copy.deepcopy(current)
        _, previously = owners.get(manager, ("Apply", set()))
        held_by_others = set().union(*(p for m, (_, p) in owners.items() if m != manager))
        for path in previously - set(applied) - held_by_others:
            _remove(obj, path)
        for path, value in applied.items():
            _set(obj, path, value)
        for other, (op, paths) in list(owners.items()):
            if other != manager:
                owners[other] = (op, paths - {p for _, p in conflicts})
        owners[manager] = ("Apply", set(applied))
        if "deletionTimestamp" in obj["metadata"] and not obj["metadata"].get("finalizers"):
            return self._finalize(key), False
        return self._commit(key, current, obj), False

    def delete(self, namespace: str, name: str) -> Object:
        """Gone at once, or marked with `deletionTimestamp` while finalizers remain."""
        key = (namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(name)
        if current["metadata"].get("finalizers"):
            if "deletionTimestamp" in current["metadata"]:
                return copy.deepcopy(current)
            obj = copy.deepcopy(current)
            obj["metadata"]["deletionTimestamp"] = now()
            self._objects[key] = obj
            self._stamp(key, obj)
            self._emit("MODIFIED", obj)
            return copy.deepcopy(obj)
        return self._finalize(key)

    def _finalize(self, key: tuple[str, str]) -> Object:
        obj = self._objects.pop(key)
        self._owners.pop(key, None)
        self._stamp(key, obj)
        self._emit("DELETED", obj)
        return copy.deepcopy(obj)

    def write_status(self, namespace: str, name: str, status: Object, manager: str) -> Object:
        """What a controller does: a read-modify-write of `.status` only."""
        current = self.get(namespace, name)
        return self._replace((namespace, name), {**current, "status": status}, manager, "Update")

    def remove_finalizers(self, namespace: str, name: str, manager: str) -> Object:
        current = self.get(namespace, name)
        current["metadata"].pop("finalizers", None)
        return self._replace((namespace, name), current, manager, "Update")
