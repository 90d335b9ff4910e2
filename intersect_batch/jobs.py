"""The crawl's jobs: what a job asks, how it resumes, how it ends, and what observers see.

:class:`JobBook` keeps each job's own bookkeeping beside the schedule's (its writer, its
calls, retries and cost, its errors) and does what happens to a job as a whole: resume
its durable progress, complete it (its result renamed into place, once), fail it, and
give each its end (:class:`JobFinal`, what its manifest is built from).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import msgspec

from intersect_batch.checkpoint import Checkpoint, Counters
from intersect_batch.durable import in_thread
from intersect_batch.errors import OutputError
from intersect_batch.jobstate import Hole
from intersect_batch.layout import RunFolder
from intersect_batch.schedule import Schedule
from intersect_batch.statefolder import names_in_state
from intersect_batch.store import JobStore
from intersect_batch.suspicion import duplicate_share
from intersect_batch.writer import JobWriter

__all__ = [
    "CallError",
    "CrawlJob",
    "CrawlObserver",
    "JobBook",
    "JobFinal",
    "JobRecord",
    "JobSnapshot",
    "StoreFactory",
    "now_iso",
]

log = logging.getLogger("intersect_batch")

#: How many failed calls a job's manifest keeps.
MAX_ERRORS = 50
#: A total_count this many times the last run's (and PLAN_JUMP_PAGES pages more) is flagged.
PLAN_JUMP_FACTOR = 10
PLAN_JUMP_PAGES = 10

#: Makes a job's store (its files in the run folder): JobStore, or a test's own.
StoreFactory = Callable[[RunFolder, str], JobStore]


@dataclass(frozen=True, slots=True)
class CrawlJob:
    """A job to crawl: what it asks the API, and how it pages."""

    job_id: str
    params: dict[str, Any]
    page_size: int
    max_items: int | None
    fingerprint: str
    #: The total_count of the job's last complete run of the same request, if any.
    previous_total: int | None = None


class CallError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One failed call, as the API or the network answered it."""

    kind: str
    message: str
    offset: int | None = None
    http_status: int | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job at one moment, for observers; pages, items and cost include earlier runs."""

    job_id: str
    status: str | None
    pages_done: int
    pages_planned: int | None
    items: int
    calls: int
    retries: int
    cost_usd: float
    resumed_pages: int


@dataclass(frozen=True)
class JobFinal:
    """How a job ended: everything its manifest is built from."""

    job: CrawlJob
    status: Literal["complete", "failed", "partial"]
    reason: str | None
    checkpoint: Checkpoint | None
    pages_planned: int | None
    #: The job's calls, retries and reported cost over every invocation of the date.
    counters: Counters
    #: What this invocation added to them.
    invocation: Counters
    resumed_pages: int
    errors: tuple[CallError, ...]
    holes: tuple[Hole, ...]
    warnings: tuple[str, ...]
    started_at: str
    finished_at: str
    duration_s: float
    output: Path | None
    #: The total_count this run found, when it jumped past the last run's by a factor.
    plan_jump: int | None = None
    #: Items in the pages this invocation made durable (before de-duplication).
    items_fetched: int = 0


class CrawlObserver:
    """Hooks for progress displays; every method does nothing unless overridden.

    Observers get frozen snapshots, never the crawler's own objects.
    """

    def job_started(self, job: JobSnapshot) -> None:
        """A job is about to be crawled (or resumed)."""

    def page_done(self, job: JobSnapshot, items: int, cost: float) -> None:
        """One page is durable."""

    def call_retried(self, job: JobSnapshot, offset: int, message: str, delay: float) -> None:
        """A call failed transiently and goes out again after ``delay`` seconds."""

    def job_finished(self, job: JobSnapshot, final: JobFinal) -> None:
        """A job ended (complete, failed or partial)."""

    def stopping(self, message: str) -> None:
        """The run sends no more calls; ``message`` says what it waits for."""

    async def watch(self) -> None:
        """Runs beside the crawl (e.g. a periodic report); cancelled when the crawl ends."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(eq=False, slots=True)
class JobRecord:
    """One job during the crawl: its bookkeeping beside the schedule's."""

    spec: CrawlJob
    key: int
    #: None until the job's store is opened (at once for a job with files on disk, at its
    #: first page for one without), and again once the job is complete.
    writer: JobWriter | None = None
    base: Counters = field(default_factory=Counters)
    calls: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    resumed_pages: int = 0
    errors: list[CallError] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    started_at: str = ""
    #: Loop time of the job's first call sent by this invocation (None: none was sent).
    first_sent: float | None = None
    #: When the job completed or failed (ISO time, loop time); None while it has not.
    ended_at: tuple[str, float] | None = None
    checkpoint: Checkpoint | None = None
    output: Path | None = None
    ended: bool = False
    plan_jump: int | None = None
    items_fetched: int = 0
    #: A call went out for the job in this invocation.
    sent: bool = False
    #: How the job ended, kept once it is complete (its store is let go then).
    final: JobFinal | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    def counters(self) -> Counters:
        return Counters(
            calls=self.base.calls + self.calls,
            retries=self.base.retries + self.retries,
            cost_usd=self.base.cost_usd + self.cost_usd,
        )

    def record(self, error: CallError) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)


class JobBook:
    """Every job of the crawl, by its key in the schedule."""

    def __init__(
        self,
        jobs: Sequence[CrawlJob],
        *,
        folder: RunFolder,
        schedule: Schedule,
        observer: CrawlObserver,
        on_job_end: Callable[[JobFinal], Awaitable[None]] | None,
        store: StoreFactory = JobStore,
    ) -> None:
        self.folder = folder
        self.schedule = schedule
        self.observer = observer
        self.on_job_end = on_job_end
        self.store = store
        self.records = [JobRecord(spec=spec, key=key) for key, spec in enumerate(jobs)]

    def __getitem__(self, key: int) -> JobRecord:
        return self.records[key]

    async def prepare(self) -> None:
        """Open every job's progress: resume what is durable, complete what is whole.

        Only jobs with files in the state folder are opened now; the others start from
        nothing, and their store is made with their first page (:meth:`writer`).
        """
        try:
            on_disk: frozenset[str] | None = await in_thread(names_in_state, self.folder)
        except OSError:
            on_disk = None  # each job's own opening says what is wrong
        started_at = now_iso()  # one string for all: a night may hold many jobs
        for job in self.records:
            job.started_at = started_at
            if on_disk is not None and job.job_id not in on_disk:
                self.schedule.add_job(job.spec.page_size, job.spec.max_items)
                self.observer.job_started(self.snapshot(job))
                continue
            job.writer = JobWriter(self.store(self.folder, job.job_id))
            try:
                opened = await job.writer.open(job.spec.fingerprint)
            except OutputError as exc:
                job.writer = None
                self.schedule.add_job(job.spec.page_size, job.spec.max_items, total=0)
                self.schedule.end_job(job.key, "failed", str(exc))
                job.record(CallError(kind="output", message=str(exc)))
                continue
            checkpoint = opened.checkpoint
            job.checkpoint = checkpoint
            job.warnings = opened.warnings
            for warning in opened.warnings:
                log.warning(warning, extra={"job": job.job_id})
            job.base = checkpoint.counters
            job.started_at = checkpoint.started_at
            job.resumed_pages = checkpoint.pages
            total = checkpoint.total_last
            if total is None and checkpoint.pages:
                # Every durable page said "no result" (40102): the query has none.
                total = 0
            key = self.schedule.add_job(
                job.spec.page_size,
                job.spec.max_items,
                total=total,
                durable=checkpoint.pages_done,
                written=checkpoint.next_page,
            )
            assert key == job.key
            self.observer.job_started(self.snapshot(job))
            if checkpoint.finalized:
                # A crash came after the result was complete and before it was closed.
                self.schedule.end_job(job.key, "complete", None)
                await self.complete(job)
            elif total is not None:
                log.info(
                    "job resumed", extra={"job": job.job_id, "pages_on_disk": job.resumed_pages}
                )
                if self.schedule.finished(job.key):
                    self.schedule.end_job(job.key, "complete", None)
                    await self.complete(job)

    def check_plan(self, job: JobRecord, total: int | None) -> None:
        """Flag a job whose total_count jumped by orders of magnitude since its last run."""
        previous = job.spec.previous_total
        if total is None or previous is None or job.plan_jump is not None:
            return
        size = job.spec.page_size
        pages, before = -(-total // size), -(-previous // size)
        if pages > PLAN_JUMP_FACTOR * max(1, before) and pages > before + PLAN_JUMP_PAGES:
            job.plan_jump = total
            log.warning(
                "total_count jumped from %d at the last complete run to %d: %d pages planned",
                previous,
                total,
                pages,
                extra={"job": job.job_id},
            )

    def end(self, job: JobRecord, status: Literal["failed"], reason: str | None) -> None:
        """A job failed: say so now, not at the end of the run."""
        self.schedule.end_job(job.key, status, reason)
        if not job.ended:
            job.ended = True
            job.ended_at = (now_iso(), anyio.current_time())
            log.error("job failed: %s", reason, extra={"job": job.job_id, "status": "failed"})

    def writer(self, job: JobRecord) -> JobWriter:
        """The job's writer; a job with nothing on disk gets it with its first page."""
        if job.writer is None:
            job.writer = JobWriter(self.store(self.folder, job.job_id))
            job.checkpoint = job.writer.begin(job.spec.fingerprint)
        return job.writer

    async def complete(self, job: JobRecord) -> None:
        """Move a whole result into place, tell its end, forget its progress files.

        A job whose dropped duplicates are too many (pages that came back holding other
        pages' items) fails instead: its result would miss items.
        """
        writer = self.writer(job)
        durable = writer.durable
        problem = duplicate_share(
            durable.duplicates_dropped, durable.total_last, job.spec.page_size
        )
        if problem is not None and not durable.finalized:
            job.record(CallError(kind="bad_answer", message=problem))
            self.end(job, "failed", problem)
            return
        try:
            job.output = await writer.finalize()
        except OutputError as exc:
            job.record(CallError(kind="output", message=str(exc)))
            self.end(job, "failed", str(exc))
            return
        job.checkpoint = writer.durable
        final = job.final = self.final(job)
        self.observer.job_finished(self.snapshot(job), final)
        if self.on_job_end is not None:
            await self.on_job_end(final)
        try:
            await writer.close()
        except OSError as exc:
            log.warning("cannot remove its progress files: %s", exc, extra={"job": job.job_id})
        # A complete job keeps its final alone: its store, keys and errors go.
        job.writer, job.errors = None, []

    def snapshot(self, job: JobRecord) -> JobSnapshot:
        """The job as observers see it now."""
        state = self.schedule.job(job.key)
        checkpoint = job.checkpoint
        counters = job.counters()
        return JobSnapshot(
            job_id=job.job_id,
            status=state.status,
            pages_done=checkpoint.pages if checkpoint is not None else 0,
            pages_planned=state.planned,
            items=checkpoint.items_written if checkpoint is not None else 0,
            calls=counters.calls,
            retries=counters.retries,
            cost_usd=counters.cost_usd,
            resumed_pages=job.resumed_pages,
        )

    def final(self, job: JobRecord) -> JobFinal:
        """How the job ended, for its manifest."""
        state = self.schedule.job(job.key)
        status = state.status or "partial"
        # The job's own time: from its first call of this invocation to its end (when it
        # completed or failed, not when the run ended).
        finished_at, finished = job.ended_at or (now_iso(), anyio.current_time())
        duration = 0.0 if job.first_sent is None else max(0.0, finished - job.first_sent)
        return JobFinal(
            job=job.spec,
            status=status,
            reason=state.reason,
            checkpoint=job.checkpoint,
            pages_planned=state.planned,
            counters=job.counters(),
            invocation=Counters(calls=job.calls, retries=job.retries, cost_usd=job.cost_usd),
            resumed_pages=job.resumed_pages,
            errors=tuple(job.errors),
            holes=tuple(self.schedule.holes(job.key)),
            warnings=job.warnings,
            started_at=job.started_at,
            finished_at=finished_at,
            duration_s=duration,
            output=job.output if status == "complete" else None,
            plan_jump=job.plan_jump,
            items_fetched=job.items_fetched,
        )

    @staticmethod
    def _never_started(job: JobRecord) -> bool:
        """No call went out for the job now, and no earlier invocation left anything of it."""
        return not (job.sent or job.errors or job.warnings or job.resumed_pages or job.base.calls)

    async def finish(self, reason: str) -> tuple[list[JobFinal], list[str]]:
        """Give every job that did not complete its status and ``reason``; save its counters.

        Jobs that never started are only named (the second list): no file, no record,
        no work of their own, however many a stopped night leaves.
        """
        self.schedule.end_active(reason)
        finals: list[JobFinal] = []
        not_started: list[str] = []
        for job in self.records:
            if job.final is not None:  # complete: its result is in place
                finals.append(job.final)
                continue
            if self._never_started(job):
                not_started.append(job.job_id)
                continue
            if job.writer is not None or job.calls:
                try:
                    job.checkpoint = await self.writer(job).save(job.counters())
                except OutputError as exc:
                    job.record(CallError(kind="output", message=str(exc)))
            final = self.final(job)
            self.observer.job_finished(self.snapshot(job), final)
            if self.on_job_end is not None:
                await self.on_job_end(final)
            finals.append(final)
        return finals, not_started
