"""The leased job worker: long-running work kept in a service's own table, run at least once.

A service whose event handler must not do the work itself (a build, a scan, a
webhook delivery, a deployment's rollout) records a *job* row in the handler's unit
of work and lets a `JobWorker` run it. The jobs stay in the service's own tables;
the service tells the worker how to handle them by implementing `LeasedJobs`:

- `claim(request)`: take up to `request.limit` due jobs in one short transaction,
  `FOR UPDATE SKIP LOCKED` (replicas never take the same job) under a lease of
  `request.lease_s` from the database's clock. A job whose lease ran out (its
  worker died) is due again: the claim takes it over. `request.running` counts the
  jobs this worker runs now per group, for claims that limit a group (the gateway
  sends at most N deliveries to one sink at once).
- `renew(job, lease_s)`: extend the lease while the job runs (every third of the
  lease); `False` means another worker owns the job now, and it is cancelled.
- `run_job(job)`: do the work and record its outcome (and emit its events) in a unit of
  work of its own; domain rules (retries, backoff, giving up) live here. An
  exception is logged and the lease brings the job back.
- `release(job)`: put a job back, due now, when the worker stops before it finished.
- `describe(job)`: its id, the trace context stored with it, its group.
- `next_due_in()`: seconds until the next waiting job is due (a retry's backoff), or
  None: the worker sleeps until then, a `wake()`, or its poll interval.

Waking: the handler that records a job calls `uow.after_commit(worker.wake)`, so an
idle worker looks at once, never before the job is visible; other replicas find it
at their next poll.

Tracing: store `JobTrace.current()` with the job when the handler records it (the
consumer's span, child of the event that asked for it); the worker runs each job in
a span whose parent is that context, so the job's events continue the same trace.

Lifecycle: `async with worker:` (or `start()` / `await stop()`). Stopping claims
nothing more, lets running jobs finish for `stop_timeout_s`, then cancels the rest
and `release`s them. `run_once()` claims and runs one job inline (tests, drains).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from opentelemetry.trace import Status, StatusCode

from mlplane_runtime.telemetry.tracing import current_trace_context, job_span
from mlplane_runtime.waiting import wait_set

_log = logging.getLogger("mlplane.runtime.jobs")

J = TypeVar("J")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


def worker_id() -> str:
    """A name for one worker of one process, unique across replicas: a lease owner."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class JobTrace:
    """The W3C trace context stored with a job: the span that created it."""

    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def current(cls) -> JobTrace:
        """The active span's context (empty outside a span): what a handler stores."""
        traceparent, tracestate = current_trace_context()
        return cls(traceparent, tracestate)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What the worker needs to know of a claimed job."""

    id: str
    trace: JobTrace = JobTrace()
    group: str | None = None
    """Jobs of one group are counted together in `ClaimRequest.running`."""
    attributes: Mapping[str, str | int] = field(default_factory=dict)
    """Extra span attributes (team, model, ...)."""


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    limit: int
    """At most this many jobs (at least 1)."""
    lease_s: float
    running: Mapping[str, int]
    """Jobs this worker runs now, per group (groups with none left out)."""


class LeasedJobs(Protocol[J, R_co]):
    """A service's jobs, as the worker handles them (see the module docstring)."""

    async def claim(self, request: ClaimRequest) -> Sequence[J]: ...

    async def renew(self, job: J, lease_s: float) -> bool: ...

    async def run_job(self, job: J) -> R_co: ...

    async def release(self, job: J) -> None: ...

    def describe(self, job: J) -> JobInfo: ...

    async def next_due_in(self) -> float | None: ...


class JobWorker(Generic[J, R]):
    """Runs the jobs of one kind of one hosted service; see the module docstring.

    `service` and `kind` name its spans (`"<service> <kind>"`) and logs.
    """

    def __init__(
        self,
        service: str,
        kind: str,
        jobs: LeasedJobs[J, R],
        *,
        concurrency: int,
        lease_s: float,
        poll_s: float,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if concurrency < 1 or lease_s <= 0 or poll_s <= 0 or stop_timeout_s < 0:
            raise ValueError("concurrency >= 1, lease_s > 0, poll_s > 0, stop_timeout_s >= 0")
        self._service = service
        self._kind = kind
        self._jobs = jobs
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._stop_timeout_s = stop_timeout_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[R | None], J] = {}
        self._per_group: Counter[str] = Counter()

    @property
    def running(self) -> int:
        """How many jobs run now."""
        return len(self._running)

    def wake(self) -> None:
        """A job may be due: an idle worker claims now rather than at its next poll."""
        self._wake.set()

    def start(self) -> None:
        """Claim and run jobs in a background task (no-op when already running)."""
        if self._loop_task is None or self._loop_task.done():
            self._stopping = False
            self._loop_task = asyncio.create_task(
                self._loop(), name=f"{self._service}-{self._kind}-worker"
            )

    async def run(self) -> None:
        """Run jobs until cancelled (what a `ServiceWorker` runs), then `stop()`."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Claim nothing more; running jobs get `stop_timeout_s` to finish, then are
        cancelled and released (due again at once, for another worker or a restart)."""
        task, self._loop_task = self._loop_task, None
        self._stopping = True
        self._wake.set()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        running = dict(self._running)
        if not running:
            return
        _, unfinished = await asyncio.wait(set(running), timeout=self._stop_timeout_s)
        for job_task in unfinished:
            job_task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for job_task in unfinished:
            job = running[job_task]
            try:
                await self._jobs.release(job)
            except Exception:
                _log.exception(
                    "%s: releasing %s %s failed; its lease brings it back",
                    self._service,
                    self._kind,
                    self._jobs.describe(job).id,
                )

    async def __aenter__(self) -> JobWorker[J, R]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run_once(self) -> R | None:
        """Claim one due job and run it here; None when none was due, or it did not finish
        (it failed unexpectedly, or its lease passed to another worker). Raises what
        the claim raises."""
        claimed = await self._jobs.claim(ClaimRequest(1, self._lease_s, self._groups()))
        if not claimed:
            return None
        return await self._execute(claimed[0])

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self._concurrency - len(self._running)
            claimed: Sequence[J] = ()
            if free > 0:
                try:
                    claimed = await self._jobs.claim(
                        ClaimRequest(free, self._lease_s, self._groups())
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database went away: wait, then look again
                    _log.exception("%s: claiming %s jobs failed", self._service, self._kind)
                for job in claimed:
                    self._start_job(job)
            if claimed and len(claimed) == free:
                continue  # more may be due right now
            await self._idle()

    def _groups(self) -> dict[str, int]:
        return {group: n for group, n in self._per_group.items() if n > 0}

    def _start_job(self, job: J) -> None:
        group = self._jobs.describe(job).group
        task = asyncio.create_task(self._execute(job))
        self._running[task] = job
        if group is not None:
            self._per_group[group] += 1

        def done(finished: asyncio.Task[R | None]) -> None:
            self._running.pop(finished, None)
            if group is not None:
                self._per_group[group] -= 1
                if self._per_group[group] <= 0:
                    del self._per_group[group]
            self._wake.set()  # a slot (or a group's room) is free

        task.add_done_callback(done)

    async def _idle(self) -> None:
        timeout = self._poll_s
        with contextlib.suppress(Exception):
            due_in = await self._jobs.next_due_in()
            if due_in is not None:
                timeout = min(timeout, max(due_in, 0.05))
        await wait_set(self._wake, timeout)

    async def _execute(self, job: J) -> R | None:
        info = self._jobs.describe(job)
        attributes = {
            "mlplane.service": self._service,
            "mlplane.job.kind": self._kind,
            "mlplane.job.id": info.id,
            **info.attributes,
        }
        name = f"{self._service} {self._kind}"
        with job_span(name, info.trace.traceparent, info.trace.tracestate, attributes) as span:
            # Its own task (inheriting the span): a lost lease cancels the job alone.
            work = asyncio.create_task(self._jobs.run_job(job), name=f"{name} {info.id}")
            lost = asyncio.Event()
            renewer = asyncio.create_task(self._renew(job, info, work, lost))
            try:
                return await work
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if lost.is_set() and current is not None and not current.cancelling():
                    _log.warning(
                        "%s: %s %s stopped: its lease passed to another worker",
                        self._service,
                        self._kind,
                        info.id,
                    )
                    span.set_status(Status(StatusCode.ERROR, "lease lost"))
                    return None
                raise
            except Exception as exc:
                # Its lease runs out and the job is taken again: at least once.
                _log.exception("%s: %s %s failed", self._service, self._kind, info.id)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                return None
            finally:
                work.cancel()
                renewer.cancel()
                await asyncio.gather(work, renewer, return_exceptions=True)

    async def _renew(
        self, job: J, info: JobInfo, work: asyncio.Task[R], lost: asyncio.Event
    ) -> None:
        """Renew the lease every third of it; cancel the job when the lease is lost."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                held = await self._jobs.renew(job, self._lease_s)
            except Exception as exc:
                _log.warning(
                    "%s: %s %s: lease not renewed (%s)", self._service, self._kind, info.id, exc
                )
                continue
            if not held:
                lost.set()
                work.cancel()
                return
