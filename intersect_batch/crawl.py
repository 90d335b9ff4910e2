"""The crawl: every job's pages through one set of shared limits, each page exactly once.

This module is the glue between the pure decisions and the I/O: the
:class:`~intersect_batch.schedule.Schedule` says what to send, the
:class:`~intersect_batch.pacing.Pacer` when, the :class:`~intersect_batch.pacing.Budget`
whether it may be paid for, a ``fetch`` function (the seam: HTTP in a run, scripted
answers in tests) sends it, and each job's :class:`~intersect_batch.writer.JobWriter`
makes the answer durable. The order of a call's life:

1. an in-flight slot (``limits.concurrency``), then the schedule's next page, then the
   budget's reservation, then the rate token, right before the call is sent;
2. the answer's headers; then a place in memory (``pages_in_memory``) before its body is
   decoded, so memory does not grow with the calls in flight;
3. the slot is released once the page is decoded: the writer's queue is bounded by the
   pages in memory, so a crash loses at most ``concurrency + pages_in_memory`` paid pages;
4. the page is durable; the schedule learns the writer's position; a job whose every
   planned page is in place is finalized (its file renamed into place) once.

Nothing here raises for a job's or a call's failure: those end in the jobs' statuses.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec

from intersect_batch.client import FetchedPage
from intersect_batch.durable import in_thread
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    OutputError,
    RunFatalApiError,
    ThrottledApiError,
    UnreachableApiError,
)
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, next_booking, write_ledger
from intersect_batch.pacing import Budget, Pacer
from intersect_batch.schedule import (
    Done,
    Failure,
    GaveUp,
    Hole,
    JobEnded,
    Retry,
    RunStopped,
    Schedule,
    Send,
)
from intersect_batch.settings import RunSettings
from intersect_batch.statefolder import names_in_state
from intersect_batch.store import Checkpoint, Counters, PageIn
from intersect_batch.writer import JobWriter

__all__ = [
    "Call",
    "CallError",
    "CrawlJob",
    "CrawlObserver",
    "CrawlResult",
    "Fetch",
    "JobFinal",
    "JobSnapshot",
    "StopInfo",
    "crawl",
    "failure_of",
]

log = logging.getLogger("intersect_batch")

#: How many failed calls a job's manifest keeps.
MAX_ERRORS = 50
#: Seconds between two saves of the night's ledger while calls go on.
LEDGER_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class Call:
    """One call to make: the task to send, and which job and offset it is for."""

    job_id: str
    task: dict[str, Any]
    offset: int
    limit: int


#: The seam between the crawl and the network: send one call, return its page or raise
#: an ApiError. It must await ``before_decode()`` once the answer is in and before its
#: body is decoded (the crawler bounds how many answers are held in memory at once).
Fetch = Callable[[Call, Callable[[], Awaitable[None]]], Awaitable[FetchedPage]]


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


#: A total_count this many times the last run's (and PLAN_JUMP_PAGES pages more) is flagged.
PLAN_JUMP_FACTOR = 10
PLAN_JUMP_PAGES = 10

StopKind = Literal["run_fatal", "throttled", "unreachable", "budget", "signal", "cap"]


@dataclass(frozen=True)
class StopInfo:
    """Why the run stopped sending before its jobs were done."""

    kind: StopKind
    reason: str


@dataclass(frozen=True)
class CrawlResult:
    """What a crawl did: its jobs' ends, its own figures, and why it stopped early."""

    jobs: tuple[JobFinal, ...]
    stop: StopInfo | None
    run_fatal: ApiError | None
    interrupted_by: int | None
    started_at: str
    finished_at: str
    duration_s: float
    calls: int
    retries: int
    cost_usd: float
    #: What the budget counts as spent by this invocation (see :class:`Budget`).
    spent_usd: float
    throttled_s: float
    #: Jobs that never started: no call went out for them, and no earlier invocation left
    #: anything of them on disk. They have no entry in ``jobs``, no file, no record.
    not_started: tuple[str, ...] = ()


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


def failure_of(error: ApiError) -> Failure:
    """What an API error means for the schedule."""
    if isinstance(error, RunFatalApiError):
        return Failure.RUN_FATAL
    if isinstance(error, JobFatalApiError):
        return Failure.JOB_FATAL
    if isinstance(error, ThrottledApiError):
        return Failure.THROTTLED
    if isinstance(error, UnreachableApiError):
        return Failure.UNREACHABLE
    return Failure.TRANSIENT


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(eq=False, slots=True)
class _Job:
    """One job during the crawl: the crawler's own bookkeeping beside the schedule's."""

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
    started: float = 0.0
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


class _Crawler:
    def __init__(
        self,
        jobs: Sequence[CrawlJob],
        *,
        fetch: Fetch,
        folder: RunFolder,
        settings: RunSettings,
        observer: CrawlObserver,
        ledger: Ledger,
        on_job_end: Callable[[JobFinal], Awaitable[None]] | None,
        rng: random.Random,
        describe_endpoint: str,
    ) -> None:
        self.fetch = fetch
        self.folder = folder
        self.settings = settings
        self.observer = observer
        self.on_job_end = on_job_end
        self.endpoint = describe_endpoint
        self.schedule = Schedule(retry=settings.retry, pages_ahead=settings.pages_ahead, rng=rng)
        self.pacer = Pacer(settings.limits)
        self.budget = Budget(settings.budget_usd, spent_before=ledger.committed_usd)
        self.ledger_base = ledger
        self.booked = ledger.booked_usd
        self.slots = anyio.CapacityLimiter(settings.limits.concurrency)
        self.gate = anyio.Semaphore(max(1, settings.pages_in_memory))
        self.jobs = [_Job(spec=spec, key=key) for key, spec in enumerate(jobs)]
        self.in_flight = 0
        self.calls_started = 0
        self.calls = 0
        self.retries = 0
        self.cost_usd = 0.0
        self.started_spent = self.budget.spent
        self.stop_info: StopInfo | None = None
        self.run_fatal: ApiError | None = None
        self.interrupted_by: int | None = None
        self._changed = anyio.Event()
        self._unsent: set[anyio.CancelScope] = set()
        self._hard_stop = False
        self._ledger_dirty = False

    # -- preparing ------------------------------------------------------------------------

    async def prepare(self) -> None:
        try:
            on_disk: frozenset[str] | None = await in_thread(names_in_state, self.folder)
        except OSError:
            on_disk = None  # each job's own opening says what is wrong
        started_at = _now_iso()  # one string for all: a night may hold many jobs
        for job in self.jobs:
            job.started = time.monotonic()
            job.started_at = started_at
            if on_disk is not None and job.job_id not in on_disk:
                # Nothing of it on disk: its store starts with its first page.
                self.schedule.add_job(job.spec.page_size, job.spec.max_items)
                self.observer.job_started(self._snapshot(job))
                continue
            job.writer = JobWriter(self.folder, job.job_id)
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
                log.warning("%s", warning, extra={"job": job.job_id})
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
            self.observer.job_started(self._snapshot(job))
            if checkpoint.finalized:
                # A crash came after the result was complete and before it was closed.
                self.schedule.end_job(job.key, "complete", None)
                await self._complete(job)
            elif total is not None:
                log.info(
                    "job resumed", extra={"job": job.job_id, "pages_on_disk": job.resumed_pages}
                )
                if self.schedule.finished(job.key):
                    self.schedule.end_job(job.key, "complete", None)
                    await self._complete(job)

    # -- dispatching ----------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_for_change(self, until: float | None) -> None:
        changed = self._changed
        timeout = None if until is None else max(0.0, until - anyio.current_time())
        with anyio.move_on_after(timeout):
            await changed.wait()

    async def dispatch(self, calls: anyio.abc.TaskGroup) -> None:
        while True:
            token = object()
            await self.slots.acquire_on_behalf_of(token)
            decision = self.schedule.next(anyio.current_time())
            while not isinstance(decision, Send | Done):
                await self._wait_for_change(decision.until)
                decision = self.schedule.next(anyio.current_time())
            if isinstance(decision, Done):
                self.slots.release_on_behalf_of(token)
                return
            job = self.jobs[decision.job]
            cap = self.settings.max_calls
            if cap and self.calls_started >= cap:
                self.slots.release_on_behalf_of(token)
                self.schedule.unsent(job.key, decision.page)
                self._stop(
                    "cap",
                    f"the safety cap of {cap} calls for one run is reached (--max-calls); "
                    "raise it if the jobs really need more",
                )
                return
            reservation = await self._reserve(decision.limit)
            if reservation is None:
                self.slots.release_on_behalf_of(token)
                self.schedule.unsent(job.key, decision.page)
                if self.in_flight:
                    # Calls in flight may cost less than their worst case, or tell the
                    # price: wait for one to settle, then ask again.
                    await self._wait_for_change(None)
                    continue
                worst = self.budget.worst_case(decision.limit)
                self._stop(
                    "budget",
                    f"budget: the next call could cost {worst:.5f} USD and "
                    f"{self.budget.spent:.5f} of {self.settings.budget_usd} USD are spent "
                    "tonight",
                )
                return
            self.in_flight += 1
            self.calls_started += 1
            calls.start_soon(self._call, job, decision, token, reservation)

    async def _reserve(self, limit: int) -> float | None:
        reservation = self.budget.reserve(limit)
        booking = next_booking(self.settings.budget_usd, self.budget.committed, self.booked)
        if reservation is not None and booking is not None:
            # Book the money in the ledger before the call can spend it: a crash now
            # cannot make the night forget it (see intersect_batch.ledger).
            before, self.booked = self.booked, booking
            error = await self._save_ledger()
            if error is not None:
                # Money not booked on disk would be spent again by the night's next
                # invocation (a full disk, then space again): send no call it cannot book.
                self.booked = before
                self.budget.settle(reservation, 0.0)
                self._stop(
                    "budget",
                    f"budget: the night's spend cannot be booked in {self.folder.ledger} "
                    f"({error}); a capped run sends no call it cannot book",
                )
                return None
        return reservation

    async def _call(self, job: _Job, send: Send, token: object, reservation: float) -> None:
        holds_memory = False

        async def before_decode() -> None:
            nonlocal holds_memory
            await self.gate.acquire()
            holds_memory = True

        page: FetchedPage | None = None
        error: ApiError | None = None
        sent_at: float | None = None
        try:
            try:
                sent = await self._pace()
                if not sent or not self.schedule.job(job.key).active:
                    self.budget.settle(reservation, 0.0)
                    self.schedule.unsent(job.key, send.page)
                    return
                job.calls += 1
                job.sent = True
                self.calls += 1
                self._ledger_dirty = True
                sent_at = anyio.current_time()
                call = Call(
                    job_id=job.job_id,
                    task={**job.spec.params, "offset": send.offset, "limit": send.limit},
                    offset=send.offset,
                    limit=send.limit,
                )
                try:
                    page = await self.fetch(call, before_decode)
                except ApiError as exc:
                    error = exc.at(job_id=job.job_id, offset=send.offset)
                    if isinstance(exc, UnreachableApiError):
                        # Nothing reached the API: no call was made, none is counted.
                        job.calls -= 1
                        self.calls -= 1
            finally:
                if page is not None:
                    self.budget.settle(reservation, page.cost, len(page.lines))
                    job.cost_usd += page.cost
                    self.cost_usd += page.cost
                elif error is not None:
                    # An answer that said what it cost, or a call that may have been
                    # billed with no word of the price: then the worst case counts.
                    if error.cost is not None:
                        self.budget.settle(reservation, error.cost)
                        job.cost_usd += error.cost
                        self.cost_usd += error.cost
                    else:
                        self.budget.settle(reservation, None if error.maybe_billed else 0.0)
                self.slots.release_on_behalf_of(token)
                self._notify()
            completes = False
            try:
                if error is not None:
                    await self._failed(job, send, error, sent_at=sent_at)
                elif page is not None:
                    completes = await self._answered(job, send, page, sent_at)
            finally:
                if holds_memory:
                    self.gate.release()
            if completes:
                # The result is whole: move it into place even if the run is being
                # cancelled, so that what is on disk and what the schedule knows agree.
                with anyio.CancelScope(shield=True):
                    await self._complete(job)
        finally:
            self.in_flight -= 1
            self._notify()

    async def _pace(self) -> bool:
        """Wait for the rate; False when the run stopped hard meanwhile (not sent then)."""
        if self._hard_stop:
            return False
        with anyio.CancelScope() as unsent:
            self._unsent.add(unsent)
            try:
                await self.pacer.wait()
            finally:
                self._unsent.discard(unsent)
        return not unsent.cancelled_caught and not self._hard_stop

    async def _answered(
        self, job: _Job, send: Send, page: FetchedPage, sent_at: float | None = None
    ) -> bool:
        """Write an answered page; True when that completes the job."""
        verdict = self.schedule.answered(
            job.key,
            send.page,
            anyio.current_time(),
            total=page.total_count,
            items=len(page.lines),
            limit=send.limit,
            sent_at=sent_at,
        )
        if isinstance(verdict, Hole):
            error = ApiError(verdict.reason, job_id=job.job_id, offset=send.offset)
            await self._failed(job, send, error, hole=verdict, sent_at=sent_at)
            return False
        if verdict == "drop":
            return False
        self._check_plan(job, page.total_count)
        try:
            checkpoint = await self._writer(job).write(
                PageIn(send.page, page.lines, page.total_count), job.counters()
            )
        except OutputError as exc:
            job.record(CallError(kind="output", message=str(exc), offset=send.offset))
            self._end(job, "failed", str(exc))
            return False
        job.checkpoint = checkpoint
        job.items_fetched += len(page.lines)
        log.debug(
            "page written",
            extra={"job": job.job_id, "offset": send.offset, "items": len(page.lines)},
        )
        completes = self.schedule.durable(job.key, checkpoint.next_page, (send.page,))
        self.observer.page_done(self._snapshot(job), len(page.lines), page.cost)
        return completes

    async def _failed(
        self,
        job: _Job,
        send: Send,
        error: ApiError,
        *,
        hole: Hole | None = None,
        sent_at: float | None = None,
    ) -> None:
        failure = Failure.TRANSIENT if hole is not None else failure_of(error)
        message = error.describe()
        job.record(
            CallError(
                kind="hole" if hole is not None else error.kind,
                message=error.message,
                offset=send.offset,
                http_status=error.http_status,
                status_code=error.status_code,
            )
        )
        now = anyio.current_time()
        outcome = self.schedule.failed(
            job.key,
            send.page,
            now,
            failure,
            message=message,
            retry_after=error.retry_after,
            hole=hole,
            sent_at=sent_at,
        )
        if isinstance(outcome, Retry):
            if failure is not Failure.UNREACHABLE:
                job.retries += 1
                self.retries += 1
            if outcome.paused_until is not None:
                self.pacer.pause_until(outcome.paused_until)
            delay = max(0.0, outcome.at - now)
            if math.isfinite(delay):
                log.warning(
                    "call failed, retrying in %.2fs: %s",
                    delay,
                    error.message,
                    extra={"job": job.job_id, "offset": send.offset, "attempt": outcome.attempt},
                )
            self.observer.call_retried(self._snapshot(job), send.offset, error.message, delay)
        elif isinstance(outcome, GaveUp) or (
            isinstance(outcome, JobEnded) and outcome.status == "failed"
        ):
            self._end(job, "failed", outcome.reason)
        elif isinstance(outcome, RunStopped):
            if outcome.kind == "run_fatal":
                self.run_fatal = self.run_fatal or error
                reason = f"the API stopped the run: {message}"
            elif outcome.kind == "unreachable":
                self.run_fatal = self.run_fatal or error
                reason = f"the API at {self.endpoint} could not be reached: {error.message}"
            else:
                reason = (
                    f"{outcome.reason}: lower --rate-per-minute (now "
                    f"{self.settings.limits.rate_per_minute}) or --concurrency (now "
                    f"{self.settings.limits.concurrency}) to what the account allows"
                )
            self._stop(outcome.kind, reason)

    def _check_plan(self, job: _Job, total: int | None) -> None:
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

    def _end(self, job: _Job, status: Literal["failed"], reason: str | None) -> None:
        """A job failed: say so now, not at the end of the run."""
        self.schedule.end_job(job.key, status, reason)
        if not job.ended:
            job.ended = True
            log.error("job failed: %s", reason, extra={"job": job.job_id, "status": "failed"})

    def _writer(self, job: _Job) -> JobWriter:
        """The job's writer; a job with nothing on disk gets it with its first page."""
        if job.writer is None:
            job.writer = JobWriter(self.folder, job.job_id)
            job.checkpoint = job.writer.begin(job.spec.fingerprint)
        return job.writer

    async def _complete(self, job: _Job) -> None:
        writer = self._writer(job)
        try:
            job.output = await writer.finalize()
        except OutputError as exc:
            job.record(CallError(kind="output", message=str(exc)))
            self._end(job, "failed", str(exc))
            return
        job.checkpoint = writer.durable
        job.ended = True
        final = job.final = self._final(job)
        self.observer.job_finished(self._snapshot(job), final)
        if self.on_job_end is not None:
            await self.on_job_end(final)
        try:
            await writer.close()
        except OSError as exc:
            log.warning("cannot remove its progress files: %s", exc, extra={"job": job.job_id})
        # A complete job keeps its final alone: its store, keys and errors go.
        job.writer, job.errors = None, []

    def _stop(self, kind: StopKind, reason: str) -> None:
        """Send no more calls; those in flight are still answered and written.

        The budget and the safety cap stop handing out calls, and the calls already
        handed out (paid for in the budget, within the cap) still go; any other stop
        also holds back the calls waiting for their rate token.
        """
        if self.stop_info is None:
            self.stop_info = StopInfo(kind, reason)
            log.warning("stopping: %s", reason)
        self.schedule.stop_all(reason)
        if kind not in ("budget", "cap"):
            self._hard_stop = True
            for scope in self._unsent:
                scope.cancel()
        self._notify()

    # -- the night's ledger ---------------------------------------------------------------

    def ledger(self) -> Ledger:
        base = self.ledger_base
        spent = base.committed_usd + (self.budget.spent - self.started_spent)
        return Ledger(
            spent_usd=round(spent, 8),
            cost_usd=round(base.cost_usd + self.cost_usd, 8),
            calls=base.calls + self.calls,
            retries=base.retries + self.retries,
            throttled_s=round(base.throttled_s + self.schedule.throttled_seconds, 3),
            invocations=base.invocations + 1,
            booked_usd=round(max(self.booked, spent), 8) if self.booked else 0.0,
        )

    async def _save_ledger(self, *, final: bool = False) -> str | None:
        """Write the night's ledger; the reason it could not be written, else None."""
        ledger = self.ledger()
        if final:
            ledger = msgspec.structs.replace(ledger, booked_usd=0.0)
        self._ledger_dirty = False
        try:
            await in_thread(write_ledger, self.folder.ledger, ledger)
        except OSError as exc:
            log.error("cannot write the night's ledger: %s", exc.strerror or exc)
            return str(exc.strerror or exc)
        return None

    async def keep_ledger(self) -> None:
        while True:
            await anyio.sleep(LEDGER_INTERVAL)
            if self._ledger_dirty:
                await self._save_ledger()

    # -- ending ---------------------------------------------------------------------------

    def _snapshot(self, job: _Job) -> JobSnapshot:
        state = self.schedule.job(job.key) if job.key < len(self.schedule.jobs) else None
        checkpoint = job.checkpoint
        counters = job.counters()
        return JobSnapshot(
            job_id=job.job_id,
            status=state.status if state is not None else None,
            pages_done=checkpoint.pages if checkpoint is not None else 0,
            pages_planned=state.planned if state is not None else None,
            items=checkpoint.items_written if checkpoint is not None else 0,
            calls=counters.calls,
            retries=counters.retries,
            cost_usd=counters.cost_usd,
            resumed_pages=job.resumed_pages,
        )

    def _final(self, job: _Job) -> JobFinal:
        state = self.schedule.job(job.key)
        status = state.status or "partial"
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
            finished_at=_now_iso(),
            duration_s=time.monotonic() - job.started,
            output=job.output if status == "complete" else None,
            plan_jump=job.plan_jump,
            items_fetched=job.items_fetched,
        )

    @staticmethod
    def _never_started(job: _Job) -> bool:
        """No call went out for the job now, and no earlier invocation left anything of it."""
        return not (job.sent or job.errors or job.warnings or job.resumed_pages or job.base.calls)

    async def finish(self) -> tuple[list[JobFinal], list[str]]:
        """Give every job that did not complete its status and reason; save its counters.

        Jobs that never started are only named (the second list): no file, no record,
        no work of their own, however many a stopped night leaves.
        """
        reason = (
            self.stop_info.reason if self.stop_info else "stopped before its pages were fetched"
        )
        self.schedule.end_active(reason)
        finals: list[JobFinal] = []
        not_started: list[str] = []
        for job in self.jobs:
            if job.final is not None and job.output is not None:
                finals.append(job.final)
                continue
            if self._never_started(job):
                not_started.append(job.job_id)
                continue
            if job.writer is not None or job.calls:
                try:
                    job.checkpoint = await self._writer(job).save(job.counters())
                except OutputError as exc:
                    job.record(CallError(kind="output", message=str(exc)))
            final = self._final(job)
            self.observer.job_finished(self._snapshot(job), final)
            if self.on_job_end is not None:
                await self.on_job_end(final)
            finals.append(final)
        await self._save_ledger(final=True)
        return finals, not_started

    # -- signals --------------------------------------------------------------------------

    async def watch_signals(self, calls_scope: anyio.CancelScope) -> None:
        # asyncio puts the default handlers back when the receiver closes; a caller that
        # handles the signals before and after the crawl (the CLI) gets its own back.
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.getsignal(signum) for signum in handled}
        try:
            with anyio.open_signal_receiver(*handled) as signals:
                async for signum in signals:
                    if self._on_signal(signum, calls_scope):
                        return
        finally:
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)

    def _on_signal(self, signum: int, calls_scope: anyio.CancelScope) -> bool:
        """Stop sending (the first signal) or abandon the calls in flight (a second)."""
        if self.interrupted_by is None:
            self.interrupted_by = signum
            self._stop("signal", f"interrupted by {signal.Signals(signum).name}")
            grace = self.settings.grace
            calls = "call" if self.in_flight == 1 else "calls"
            again = "Ctrl-C" if signum == signal.SIGINT else "a second signal"
            message = (
                f"waiting up to {grace:.0f} s for {self.in_flight} {calls} in flight; "
                f"{again} again to stop now"
            )
            log.warning("%s", message, extra={"_shown_by_progress": True})
            self.observer.stopping(message)
            calls_scope.deadline = min(calls_scope.deadline, anyio.current_time() + grace)
            return False
        message = "stopping now: the calls in flight are abandoned"
        log.warning("%s", message, extra={"_shown_by_progress": True})
        self.observer.stopping(message)
        calls_scope.cancel()
        return True


async def crawl(
    jobs: Sequence[CrawlJob],
    *,
    fetch: Fetch,
    folder: RunFolder,
    settings: RunSettings,
    ledger: Ledger | None = None,
    observer: CrawlObserver | None = None,
    on_job_end: Callable[[JobFinal], Awaitable[None]] | None = None,
    handle_signals: bool = False,
    rng: random.Random | None = None,
    endpoint: str = "the API",
) -> CrawlResult:
    """Crawl every job into ``folder``; resume what an earlier run of the date left.

    ``fetch`` sends one call (see :data:`Fetch`). ``ledger`` is what earlier invocations
    of the night spent (the budget holds for the night). ``on_job_end`` is awaited once
    per job as it ends (complete jobs before their progress files are removed), so that
    its manifest is written then. ``handle_signals`` turns SIGINT / SIGTERM into a clean
    stop: the first lets calls in flight finish within ``settings.grace``, a second
    abandons them at once.
    """
    started = time.monotonic()
    started_at = _now_iso()
    crawler = _Crawler(
        jobs,
        fetch=fetch,
        folder=folder,
        settings=settings,
        observer=observer or CrawlObserver(),
        ledger=ledger or Ledger(),
        on_job_end=on_job_end,
        rng=rng or random.Random(),
        describe_endpoint=endpoint,
    )
    await crawler.prepare()
    async with anyio.create_task_group() as outer:
        calls_scope = anyio.CancelScope()
        if handle_signals:
            outer.start_soon(crawler.watch_signals, calls_scope)
        outer.start_soon(crawler.observer.watch)
        outer.start_soon(crawler.keep_ledger)
        with calls_scope:
            async with anyio.create_task_group() as calls:
                await crawler.dispatch(calls)
        if calls_scope.cancelled_caught:
            log.warning("calls still in flight were abandoned; their pages are fetched again")
        outer.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        finals, not_started = await crawler.finish()
    return CrawlResult(
        jobs=tuple(finals),
        stop=crawler.stop_info,
        run_fatal=crawler.run_fatal,
        interrupted_by=crawler.interrupted_by,
        started_at=started_at,
        finished_at=_now_iso(),
        duration_s=time.monotonic() - started,
        calls=crawler.calls,
        retries=crawler.retries,
        cost_usd=round(crawler.cost_usd, 8),
        spent_usd=round(crawler.budget.spent - crawler.started_spent, 8),
        throttled_s=round(crawler.schedule.throttled_seconds, 3),
        not_started=tuple(not_started),
    )
