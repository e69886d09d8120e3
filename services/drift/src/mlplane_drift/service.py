"""The drift service's use cases. Each takes the caller's unit of work and never commits it.

- versions learnt from `model.version.registered` (which team owns which version);
- reference profiles: stored in object storage under a key of their own, named in
  the `reference_profiles` table;
- window policies per model and environment (the settings give the default);
- intake: a batch of samples becomes one partial window summary appended to the
  open window of its key; nothing is judged here (the verdict worker does that);
- reports: read back, team-scoped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import pyarrow as pa
from mlplane_contracts import events as ev
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork

from mlplane_drift.blobs import BlobStore, version_key
from mlplane_drift.domain.errors import (
    NoReference,
    ReferenceNotFound,
    ReportNotFound,
    VersionNotFound,
)
from mlplane_drift.domain.samples import SampleRow
from mlplane_drift.domain.windows import WindowPolicy
from mlplane_drift.first_samples import batch_bytes, profile_of
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.profiles import ProfileCache
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import DriftStore, DriftTables, ReferenceRow, ReportRow, WindowRow
from mlplane_drift.summaries import summarise

PROFILE_TYPE = "application/vnd.mlplane.drift-profile"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Intake:
    """What one batch did: how many samples it added, and the window it went to (None
    when it was kept to build the reference from, see `first_samples`)."""

    accepted: int
    window: WindowRow | None
    reference_samples: int | None = None
    """Samples kept for the reference so far, while it is being collected."""

    @property
    def closed(self) -> bool:
        return self.window is not None and self.window.state != "open"


class DriftService:
    def __init__(
        self,
        uow: UnitOfWork,
        tables: DriftTables,
        settings: DriftSettings,
        blobs: BlobStore,
        profiles: ProfileCache,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._store = DriftStore(uow.session, tables)
        self._settings = settings
        self._blobs = blobs
        self._profiles = profiles
        self._clock = clock

    @property
    def store(self) -> DriftStore:
        return self._store

    # -- versions -------------------------------------------------------------------

    async def record_version(self, data: ev.ModelVersionRegistered) -> None:
        await self._store.record_version(data.team, data.model, data.version, data.registered_at)

    async def require_version(self, team: str, model: str, version: int) -> None:
        """Raises `VersionNotFound` unless the team has the version (checked before any
        costly work on its behalf, such as reading a dataset)."""
        await self._known(team, model, version)

    async def _known(self, team: str, model: str, version: int) -> None:
        if not await self._store.version_exists(team, model, version):
            raise VersionNotFound(
                f"model {model} has no version {version} registered for team {team}",
                model=model,
                version=version,
            )

    # -- references -----------------------------------------------------------------

    async def set_reference(
        self,
        team: str,
        model: str,
        version: int,
        profile: ReferenceProfile,
        *,
        source: str,
        by: str,
    ) -> ReferenceRow:
        """Keep `profile` as the version's reference (replacing any before it).

        Raises `VersionNotFound`, `Unavailable` (storage).
        """
        await self._known(team, model, version)
        blob = await asyncio.to_thread(profile.to_bytes)
        key = version_key(team, model, version, "profiles", f"{profile.digest}.mldp")
        uri = await self._blobs.put(key, blob, PROFILE_TYPE)
        self._profiles.remember(uri, profile)
        features = [{"name": spec.name, "kind": str(spec.kind)} for spec in profile.features]
        return await self._store.put_reference(
            team,
            model,
            version,
            profile_uri=uri,
            source=source,
            rows=profile.rows,
            features=features,
            created_by=by,
            now=self._clock(),
        )

    async def reference(self, team: str, model: str, version: int) -> ReferenceRow:
        """Raises `VersionNotFound`, `ReferenceNotFound`."""
        await self._known(team, model, version)
        found = await self._store.reference(team, model, version)
        if found is None:
            raise ReferenceNotFound(
                f"model {model} version {version} has no reference profile",
                model=model,
                version=version,
            )
        return found

    # -- window policies ------------------------------------------------------------

    def default_policy(self) -> WindowPolicy:
        # 0 in the settings means "not by this".
        return WindowPolicy(
            self._settings.window_count or None, self._settings.window_seconds or None
        )

    async def window_policy(
        self, team: str, model: str, environment: ev.Environment
    ) -> tuple[WindowPolicy, bool]:
        """The policy windows of `model` in `environment` open with, and whether it is
        the default (nothing set for them)."""
        found = await self._store.window_policy(team, model, environment.value)
        return (self.default_policy(), True) if found is None else (found, False)

    async def put_window_policy(
        self,
        team: str,
        model: str,
        environment: ev.Environment,
        policy: WindowPolicy,
        by: str,
    ) -> None:
        """Windows opened from now on close by `policy` (the open one keeps its own)."""
        await self._store.put_window_policy(team, model, environment.value, policy, by)

    # -- intake ---------------------------------------------------------------------

    async def add_samples(
        self,
        team: str,
        model: str,
        version: int,
        environment: ev.Environment,
        samples: Sequence[SampleRow] | pa.Table,
    ) -> Intake:
        """Fold one batch into the open window of the version in `environment`.

        Raises `VersionNotFound`, `NoReference`, `InvalidSamples` / `DriftInputError`
        (the batch does not fit the profile), `Unavailable` (the profile unreadable now).
        """
        await self._known(team, model, version)
        reference = await self._store.reference(team, model, version)
        if reference is None:
            if self._settings.reference_from_samples == 0 or isinstance(samples, pa.Table):
                raise NoReference(
                    f"model {model} version {version} has no reference profile yet: set one "
                    f"(PUT /models/{model}/versions/{version}/reference) before sending samples",
                    model=model,
                    version=version,
                )
            collected = await self._collect_reference(team, model, version, samples)
            if collected is not None:
                return collected
            reference = await self._store.reference(team, model, version)
            assert reference is not None  # built meanwhile by another batch
        profile = await self._profiles.load(reference.profile_uri)
        summary, count = await asyncio.to_thread(summarise, profile, samples)
        found = await self._store.window_policy(team, model, environment.value)
        window = await self._store.append_partial(
            team,
            model,
            version,
            environment.value,
            profile_uri=reference.profile_uri,
            sample_count=count,
            summary=summary,
            policy=found or self.default_policy(),
            now=self._clock(),
            trace=JobTrace.current(),
        )
        return Intake(count, window)

    async def _collect_reference(
        self, team: str, model: str, version: int, rows: Sequence[SampleRow]
    ) -> Intake | None:
        """Keep `rows` for the version's reference, and build it once there are enough;
        None when the reference exists already (another batch built it meanwhile)."""
        # The version's row lock serializes batches collecting for one version, so
        # exactly one of them builds the reference, from every batch kept before it.
        await self._store.lock_version(team, model, version)
        if await self._store.reference(team, model, version) is not None:
            return None
        blob, count = await asyncio.to_thread(batch_bytes, rows)
        total = await self._store.add_reference_samples(team, model, version, count, blob)
        needed = self._settings.reference_from_samples
        if total < needed:
            return Intake(count, None, reference_samples=total)
        batches = await self._store.reference_samples(team, model, version)
        profile = await asyncio.to_thread(profile_of, batches)
        await self.set_reference(
            team,
            model,
            version,
            profile,
            source=f"the first {total} samples",
            by="service:drift",
        )
        await self._store.drop_reference_samples(team, model, version)
        return Intake(count, None, reference_samples=total)

    async def windows(
        self,
        team: str,
        model: str,
        version: int,
        environment: ev.Environment | None,
        limit: int,
    ) -> Sequence[WindowRow]:
        """The version's windows, newest first. Raises `VersionNotFound`."""
        await self._known(team, model, version)
        return await self._store.windows_of(
            team,
            model,
            version,
            None if environment is None else environment.value,
            newest_first=True,
            limit=limit,
        )

    # -- reports --------------------------------------------------------------------

    async def reports(
        self,
        team: str,
        model: str,
        *,
        version: int | None,
        environment: ev.Environment | None,
        limit: int,
    ) -> Sequence[ReportRow]:
        return await self._store.reports(
            team,
            model,
            version=version,
            environment=None if environment is None else environment.value,
            limit=limit,
        )

    async def report(self, team: str, report_id: UUID) -> ReportRow:
        """Raises `ReportNotFound` (also for another team's report)."""
        found = await self._store.report(team, report_id)
        if found is None:
            raise ReportNotFound(f"no report {report_id}", report_id=str(report_id))
        return found
