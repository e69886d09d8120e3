"""The leased job worker's rules, on an in-memory job store: concurrency, wake-up,
per-group room, lease renewal and loss, graceful stop with release, trace continued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .otel_fixtures import fresh_span_exporter


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return fresh_span_exporter()


@dataclass
class Job:
    id: int
    group: str = "a"
    trace: JobTrace = field(default_factory=JobTrace)


class Jobs:
    """Jobs in memory; `run_job` waits on `gate` unless it is set."""

    def __init__(self, jobs: Sequence[Job] = ()) -> None:
        self.waiting = list(jobs)
        self.done: list[int] = []
        self.released: list[int] = []
        self.claims: list[ClaimRequest] = []
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0
        self.hold = True  # renew answers
        self.renewals = 0
        self.trace_ids: list[int] = []

    async def claim(self, request: ClaimRequest) -> Sequence[Job]:
        self.claims.append(request)
        taken: list[Job] = []
        for job in list(self.waiting):
            if len(taken) == request.limit:
                break
            taken.append(job)
            self.waiting.remove(job)
        return taken

    async def renew(self, job: Job, lease_s: float) -> bool:
        self.renewals += 1
        return self.hold

    async def release(self, job: Job) -> None:
        self.released.append(job.id)

    def describe(self, job: Job) -> JobInfo:
        return JobInfo(id=str(job.id), trace=job.trace, group=job.group)

    async def next_due_in(self) -> float | None:
        return None

    async def run_job(self, job: Job) -> int:
        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        self.done.append(job.id)
        return job.id


def worker(jobs: Jobs, **options: float) -> JobWorker[Job, int]:
    settings = {"concurrency": 2, "lease_s": 30.0, "poll_s": 30.0, "stop_timeout_s": 1.0}
    settings.update(options)
    return JobWorker("svc", "thing", jobs, **settings)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (state of a fake, polled)
            await asyncio.sleep(0.01)


class TestJobWorker:
    async def test_runs_at_most_its_concurrency_and_claims_again_when_a_job_ends(self) -> None:
        jobs = Jobs([Job(n) for n in range(5)])
        async with worker(jobs):
            await until(lambda: jobs.running == 2)
            jobs.gate.set()
            await until(lambda: len(jobs.done) == 5)
        assert jobs.most_running == 2
        assert sorted(jobs.done) == list(range(5))

    async def test_an_idle_worker_claims_on_wake_not_at_its_poll(self) -> None:
        jobs = Jobs()
        jobs.gate.set()
        async with worker(jobs, poll_s=60.0) as running:
            await until(lambda: len(jobs.claims) == 1)
            jobs.waiting.append(Job(1))
            running.wake()
            await until(lambda: jobs.done == [1], timeout_s=2.0)

    async def test_the_claim_is_told_what_runs_per_group(self) -> None:
        jobs = Jobs([Job(1, "slow"), Job(2, "slow"), Job(3, "fast")])
        async with worker(jobs, concurrency=4) as running:
            await until(lambda: jobs.running == 3)
            running.wake()
            await until(lambda: jobs.claims[-1].running == {"slow": 2, "fast": 1})
            jobs.gate.set()

    async def test_a_job_whose_lease_is_lost_is_cancelled_and_returns_nothing(self) -> None:
        jobs = Jobs([Job(1)])
        jobs.hold = False
        outcome = await worker(jobs, lease_s=0.06).run_once()
        assert outcome is None
        assert jobs.renewals == 1
        assert jobs.done == []

    async def test_leases_are_renewed_while_a_job_runs(self) -> None:
        jobs = Jobs([Job(1)])
        running = asyncio.create_task(worker(jobs, lease_s=0.06).run_once())
        await until(lambda: jobs.renewals >= 3)
        jobs.gate.set()
        assert await running == 1

    async def test_stopping_lets_jobs_finish_within_the_timeout(self) -> None:
        jobs = Jobs([Job(1)])
        running = worker(jobs, stop_timeout_s=5.0)
        running.start()
        await until(lambda: jobs.running == 1)
        asyncio.get_running_loop().call_later(0.1, jobs.gate.set)
        await running.stop()
        assert jobs.done == [1]
        assert jobs.released == []

    async def test_stopping_releases_what_did_not_finish_in_time(self) -> None:
        jobs = Jobs([Job(1), Job(2), Job(3)])
        running = worker(jobs, stop_timeout_s=0.05)
        running.start()
        await until(lambda: jobs.running == 2)
        await running.stop()
        assert sorted(jobs.released) == [1, 2]
        assert jobs.waiting == [Job(3)]  # never claimed once stopping

    async def test_a_job_runs_in_a_span_continuing_its_stored_trace(
        self, spans: InMemorySpanExporter
    ) -> None:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("handler") as handler:
            stored = JobTrace.current()
        jobs = Jobs([Job(1, trace=stored)])
        jobs.gate.set()
        assert await worker(jobs).run_once() == 1
        [span] = [s for s in spans.get_finished_spans() if s.name == "svc thing"]
        assert span.parent is not None
        assert span.parent.span_id == handler.get_span_context().span_id
        assert span.context.trace_id == handler.get_span_context().trace_id
        assert jobs.trace_ids == [span.context.trace_id]
        assert span.attributes is not None
        assert span.attributes["mlplane.job.id"] == "1"
