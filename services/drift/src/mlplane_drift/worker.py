"""The verdict worker: closed windows judged as jobs of the runtime's leased job worker.

Each round it first closes windows whose time is up, then claims closed ones (`FOR
UPDATE SKIP LOCKED` plus a lease: replicas share the work, a judge that died is
replaced), oldest first per model version and environment, so the hysteresis sees
windows in order. A job merges the window's partial summaries, runs the tests, keeps
the report (object storage, then its row), steps the hysteresis and, when it fires,
emits `drift.detected`, all in one unit of work: the alert is emitted exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from mlplane_contracts.subjects import version_subject
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker
from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_drift import metrics
from mlplane_drift.blobs import BlobStore, version_key
from mlplane_drift.detect import DriftConfig
from mlplane_drift.profiles import ProfileCache
from mlplane_drift.reports import alert_event, report_document
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import DriftStore, DriftTables, ReportRow, WindowRow
from mlplane_drift.summaries import Judgement, alert, judge, merged_bytes

_log = logging.getLogger("mlplane.drift")
JSON = "application/json"
MAX_ATTEMPTS = 10
"""Tries of a window's verdict (one per lease) before it is marked failed with the cause."""
COMPACT_BATCH = 1000
"""The most partials one compaction merges (a window with more takes several rounds)."""


class VerdictWorker:
    """Judges closed windows of one hosted drift service: `run()` until cancelled, or
    `run_once()` (tests, drains)."""

    def __init__(
        self,
        service_name: str,
        uow_factory: UnitOfWorkFactory,
        tables: DriftTables,
        settings: DriftSettings,
        blobs: BlobStore,
        profiles: ProfileCache,
        config: DriftConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._name = service_name
        self._uow_factory = uow_factory
        self._tables = tables
        self._settings = settings
        self._blobs = blobs
        self._profiles = profiles
        self._config = config
        self._clock = clock
        self._worker: JobWorker[WindowRow, str] = JobWorker(
            service_name,
            "verdict",
            self,
            concurrency=settings.max_concurrent_verdicts,
            lease_s=settings.lease_s,
            poll_s=settings.poll_interval_s,
        )

    def wake(self) -> None:
        """Look for work now (call once a closed window is committed: `uow.after_commit`)."""
        self._worker.wake()

    async def run(self) -> None:
        await self._worker.run()

    async def run_once(self) -> str | None:
        """Close due windows, claim one closed window and judge it; its outcome, or None
        when no window was waiting."""
        return await self._worker.run_once()

    async def drain(self) -> list[str]:
        """Judge every window waiting now, one after the other; their outcomes."""
        outcomes: list[str] = []
        while (outcome := await self.run_once()) is not None:
            outcomes.append(outcome)
        return outcomes

    async def compact(self) -> int:
        """Merge the partial summaries of open windows that hold too many; how many
        windows were compacted. Intake goes on meanwhile: it only adds partials."""
        over = self._settings.compact_partials_over
        async with self._uow_factory.reading() as uow:
            windows = await self._store(uow).windows_to_compact(over)
        for window_id, profile_uri in windows:
            profile = await self._profiles.load(profile_uri)
            async with self._uow_factory() as uow:
                store = self._store(uow)
                taken = await store.take_partials(window_id, COMPACT_BATCH)
                if len(taken) < 2:
                    continue
                blob = await asyncio.to_thread(merged_bytes, profile, [t[2] for t in taken])
                count = sum(t[1] for t in taken)
                await store.replace_partials(window_id, [t[0] for t in taken], count, blob)
                await uow.commit()
        return len(windows)

    async def run_compaction(self) -> None:
        """Compact every poll interval until cancelled (a `ServiceWorker`)."""
        while True:
            try:
                await self.compact()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or storage went away: try again next round
                _log.exception("%s: compacting window summaries failed", self._name)
            await asyncio.sleep(self._settings.poll_interval_s)

    def _store(self, uow: Any) -> DriftStore:
        return DriftStore(uow.session, self._tables)

    # -- the runtime's LeasedJobs ---------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[WindowRow]:
        claimed: list[WindowRow] = []
        now = self._clock()
        async with self._uow_factory() as uow:
            store = self._store(uow)
            await store.close_due_windows(now)
            while len(claimed) < request.limit:
                window = await store.claim_window(now, request.lease_s)
                if window is None:
                    break
                claimed.append(window)
            await uow.commit()
        return claimed

    async def renew(self, window: WindowRow, lease_s: float) -> bool:
        async with self._uow_factory() as uow:
            held = await self._store(uow).renew(window.id, self._clock(), lease_s)
            await uow.commit()
        return held

    async def release(self, window: WindowRow) -> None:
        async with self._uow_factory() as uow:
            await self._store(uow).release(window.id)
            await uow.commit()

    def describe(self, window: WindowRow) -> JobInfo:
        return JobInfo(
            id=str(window.id),
            trace=JobTrace(window.traceparent, window.tracestate),
            attributes={
                "mlplane.team": window.team,
                "mlplane.model": window.model,
                "mlplane.model_version": window.version,
                "mlplane.environment": window.environment,
            },
        )

    async def next_due_in(self) -> float | None:
        async with self._uow_factory.reading() as uow:
            return await self._store(uow).next_due_in(self._clock())

    async def run_job(self, window: WindowRow) -> str:
        return await self.judge(window)

    # -- judging --------------------------------------------------------------------

    async def judge(self, window: WindowRow) -> str:
        """Judge one claimed window; its outcome: `clean` (no feature drifted), `drifted`
        (some did; the hysteresis kept quiet), `alerted` (drift.detected emitted), `failed`
        (the window cannot be judged) or `lost` (another worker finished it first)."""
        async with self._uow_factory.reading() as uow:
            partials = await self._store(uow).partial_summaries(window.id)
        try:
            profile = await self._profiles.load(window.profile_uri)
            judgement = await asyncio.to_thread(judge, profile, partials, self._config)
        except MlplaneError as exc:
            if exc.retryable and window.attempts < MAX_ATTEMPTS:
                raise  # storage down: the lease brings the window back
            return await self._fail(window, exc.detail)
        except Exception as exc:
            if window.attempts < MAX_ATTEMPTS:
                raise  # logged by the job worker; the lease brings the window back
            return await self._fail(window, f"{type(exc).__name__}: {exc}"[:1000])
        now = self._clock()
        report_id = uuid4()
        key = version_key(
            window.team,
            window.model,
            window.version,
            "reports",
            window.environment,
            f"window-{window.id}.json",
        )
        async with self._uow_factory() as uow:
            store = self._store(uow)
            state = await store.lock_alert_state(
                window.team, window.model, window.version, window.environment
            )
            alerting = alert(state, judgement.verdict, self._settings.rearm_after_clean_windows)
            document = report_document(report_id, window, profile, judgement, alerting, now=now)
            uri = await self._blobs.put(key, json.dumps(document).encode(), JSON)
            if not await store.finish_window(window.id):
                return "lost"
            await store.add_report(
                _report_row(report_id, window, judgement, alerting, uri, document, now)
            )
            await store.save_alert_state(
                window.team, window.model, window.version, window.environment, alerting.state
            )
            if alerting.fire:
                uow.emit(
                    alert_event(window, judgement, alerting, uri, now),
                    subject=version_subject(window.team, window.model, window.version),
                )
            await uow.commit()
        _export(self._name, window, judgement)
        outcome = "alerted" if alerting.fire else ("drifted" if alerting.severity else "clean")
        metrics.VERDICTS.labels(self._name, outcome).inc()
        return outcome

    async def _fail(self, window: WindowRow, cause: str) -> str:
        _log.warning(
            "window %s of %s/%s could not be judged: %s",
            window.id,
            window.team,
            window.model,
            cause,
        )
        async with self._uow_factory() as uow:
            await self._store(uow).finish_window(window.id, error=cause)
            await uow.commit()
        metrics.VERDICTS.labels(self._name, "failed").inc()
        return "failed"


def _report_row(
    report_id: Any,
    window: WindowRow,
    judgement: Judgement,
    alerting: Any,
    uri: str,
    document: dict[str, Any],
    now: datetime,
) -> ReportRow:
    verdict = judgement.verdict
    return ReportRow(
        id=report_id,
        window_id=window.id,
        team=window.team,
        model=window.model,
        version=window.version,
        environment=window.environment,
        window_start=window.opened_at,
        window_end=window.closed_at or now,
        sample_size=int(verdict.sample_size),
        reference_size=int(verdict.reference_size),
        drift_share=float(verdict.drift_share),
        dataset_drifted=bool(verdict.dataset_drifted),
        severity=alerting.severity,
        fired=alerting.fire,
        report_uri=uri,
        document=document,
        created_at=now,
    )


def _export(service: str, window: WindowRow, judgement: Judgement) -> None:
    verdict = judgement.verdict
    labels = (service, window.team, window.model, window.environment)
    metrics.DRIFT_SHARE.labels(*labels).set(float(verdict.drift_share))
    metrics.DATASET_DRIFTED.labels(*labels).set(1.0 if verdict.dataset_drifted else 0.0)
    for result in verdict.features:
        if result.method is None:
            continue  # untested (nothing to compare): no score to show
        metrics.FEATURE_SCORE.labels(*labels, result.feature, str(result.method)).set(
            float(result.score)
        )
        metrics.FEATURE_DRIFTED.labels(*labels, result.feature).set(1.0 if result.drifted else 0.0)
        if result.psi is not None:
            metrics.FEATURE_PSI.labels(*labels, result.feature).set(float(result.psi))
