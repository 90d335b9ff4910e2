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
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    OutputError,
    RunFatalApiError,
    ThrottledApiError,
    UnreachableApiError,
)
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger
from intersect_batch.money import NightMoney, Reservation, Settled
from intersect_batch.pacing import PRICE_LISTS, Pacer, PriceList
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
from intersect_batch.stop import CrawlControl, Stop
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


@dataclass(frozen=True)
class CrawlResult:
    """What a crawl did: its jobs' ends, its own figures, and why it stopped early."""

    jobs: tuple[JobFinal, ...]
    #: Why the run stopped sending before its jobs were done (None: they were done).
    stop: Stop | None
    started_at: str
    finished_at: str
    duration_s: float
    calls: int
    retries: int
    cost_usd: float
    #: What the budget counts as spent by this invocation (see :class:`Budget`).
    spent_usd: float
    throttled_s: float

    @property
    def run_fatal(self) -> ApiError | None:
        """The API's error when the account or the network stopped the run."""
        return None if self.stop is None else self.stop.error

    @property
    def interrupted_by(self) -> int | None:
        """The signal that interrupted the run, if one did."""
        return None if self.stop is None else self.stop.signum


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


@dataclass(eq=False)
class _Job:
    """One job during the crawl: the crawler's own bookkeeping beside the schedule's."""

    spec: CrawlJob
    key: int
    writer: JobWriter
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
        prices: PriceList,
    ) -> None:
        self.fetch = fetch
        self.folder = folder
        self.settings = settings
        self.observer = observer
        self.on_job_end = on_job_end
        self.endpoint = describe_endpoint
        self.schedule = Schedule(retry=settings.retry, pages_ahead=settings.pages_ahead, rng=rng)
        self.pacer = Pacer(settings.limits, lambda: self.schedule.paused_until)
        self.money = NightMoney(
            folder,
            cap=settings.budget_usd,
            ledger=ledger,
            prices=prices,
            activity=lambda: (self.retries, self.schedule.throttled_seconds),
        )
        self.slots = anyio.CapacityLimiter(settings.limits.concurrency)
        self.gate = anyio.Semaphore(max(1, settings.pages_in_memory))
        self.jobs = [
            _Job(spec=spec, key=key, writer=JobWriter(folder, spec.job_id))
            for key, spec in enumerate(jobs)
        ]
        self.in_flight = 0
        self.calls_started = 0
        self.calls = 0
        self.retries = 0
        self.cost_usd = 0.0
        self.stopped: Stop | None = None
        self.calls_scope = anyio.CancelScope()
        self._changed = anyio.Event()
        self._unsent: set[anyio.CancelScope] = set()
        self._ledger_dirty = False

    # -- preparing ------------------------------------------------------------------------

    async def prepare(self) -> None:
        for job in self.jobs:
            job.started = time.monotonic()
            job.started_at = _now_iso()
            try:
                opened = await job.writer.open(job.spec.fingerprint)
            except OutputError as exc:
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
                    Stop(
                        "cap",
                        f"the safety cap of {cap} calls for one run is reached (--max-calls); "
                        "raise it if the jobs really need more",
                    )
                )
                return
            reservation = await self.money.reserve(decision.limit)
            if reservation is None:
                self.slots.release_on_behalf_of(token)
                self.schedule.unsent(job.key, decision.page)
                if self.money.halt is None and self.in_flight:
                    # Calls in flight may cost less than their worst case, or tell the
                    # price: wait for one to settle, then ask again.
                    await self._wait_for_change(None)
                    continue
                self._stop(Stop("budget", self.money.refusal(decision.limit)))
                return
            self.in_flight += 1
            self.calls_started += 1
            calls.start_soon(self._call, job, decision, token, reservation)

    async def _call(self, job: _Job, send: Send, token: object, reservation: Reservation) -> None:
        holds_memory = False

        async def before_decode() -> None:
            nonlocal holds_memory
            await self.gate.acquire()
            holds_memory = True

        page: FetchedPage | None = None
        error: ApiError | None = None
        sent_at: float | None = None
        booked = Settled(0.0, called=False)
        try:
            try:
                sent = await self._pace()
                if not sent or not self.schedule.job(job.key).active:
                    self.schedule.unsent(job.key, send.page)
                    return
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
            finally:
                where = f"job {job.job_id}, offset {send.offset}"
                if page is not None:
                    booked = self.money.answered(
                        reservation, page.cost, len(page.lines), where=where
                    )
                    self._count(job, booked)
                elif error is not None:
                    self._count(job, self.money.failed(reservation, error, where=where))
                elif sent_at is not None:
                    # Abandoned with the call out: it may have been billed.
                    self._count(job, self.money.lost(reservation))
                else:
                    self.money.unsent(reservation)
                self.slots.release_on_behalf_of(token)
                self._notify()
            if self.money.halt is not None:
                self._stop(Stop("budget", self.money.halt))
            completes = False
            try:
                if error is not None:
                    await self._failed(job, send, error, sent_at=sent_at)
                elif page is not None:
                    completes = await self._answered(job, send, page, sent_at, booked.cost_usd)
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

    def _count(self, job: _Job, settled: Settled) -> None:
        """A call's outcome in the job's and the run's counters (a call only if it was one)."""
        if settled.called:
            job.calls += 1
            self.calls += 1
            self._ledger_dirty = True
        job.cost_usd += settled.cost_usd
        self.cost_usd += settled.cost_usd

    async def _pace(self) -> bool:
        """Wait for the rate; False when the run stopped hard meanwhile (not sent then)."""
        if self._hard_stopped:
            return False
        with anyio.CancelScope() as unsent:
            self._unsent.add(unsent)
            try:
                await self.pacer.wait()
            finally:
                self._unsent.discard(unsent)
        return not unsent.cancelled_caught and not self._hard_stopped

    @property
    def _hard_stopped(self) -> bool:
        return self.stopped is not None and self.stopped.hard

    async def _answered(
        self, job: _Job, send: Send, page: FetchedPage, sent_at: float | None, cost: float
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
            checkpoint = await job.writer.write(
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
        self.observer.page_done(self._snapshot(job), len(page.lines), cost)
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
                stop = Stop("run_fatal", f"the API stopped the run: {message}", error)
            elif outcome.kind == "unreachable":
                reason = f"the API at {self.endpoint} could not be reached: {error.message}"
                stop = Stop("unreachable", reason, error)
            else:
                reason = (
                    f"{outcome.reason}: lower --rate-per-minute (now "
                    f"{self.settings.limits.rate_per_minute}) or --concurrency (now "
                    f"{self.settings.limits.concurrency}) to what the account allows"
                )
                stop = Stop("throttled", reason)
            self._stop(stop)

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

    async def _complete(self, job: _Job) -> None:
        try:
            job.output = await job.writer.finalize()
        except OutputError as exc:
            job.record(CallError(kind="output", message=str(exc)))
            self._end(job, "failed", str(exc))
            return
        job.checkpoint = job.writer.durable
        job.ended = True
        final = self._final(job)
        self.observer.job_finished(self._snapshot(job), final)
        if self.on_job_end is not None:
            await self.on_job_end(final)
        try:
            await job.writer.close()
        except OSError as exc:
            log.warning("cannot remove its progress files: %s", exc, extra={"job": job.job_id})

    def _stop(self, stop: Stop) -> None:
        """Send no more calls; those in flight are still answered and written.

        The one place a stop is set: the first reason stays (a later signal is added to
        it, see :meth:`Stop.then`). The budget and the safety cap stop handing out calls,
        and the calls already handed out (paid for in the budget, within the cap) still
        go; any other stop also holds back the calls waiting for their rate token.
        """
        if self.stopped is None:
            self.stopped = stop
            log.warning("stopping: %s", stop.reason)
        else:
            self.stopped = self.stopped.then(stop)
        self.schedule.stop_all(stop.reason)
        if stop.hard:
            for scope in self._unsent:
                scope.cancel()
        self._notify()

    def stop(self, stop: Stop) -> None:
        """Stopped from outside: the calls in flight get ``settings.grace`` seconds."""
        self._stop(stop)
        grace = self.settings.grace
        calls = "call" if self.in_flight == 1 else "calls"
        again = "Ctrl-C" if stop.signum == signal.SIGINT else "a second signal"
        message = (
            f"waiting up to {grace:.0f} s for {self.in_flight} {calls} in flight; "
            f"{again} again to stop now"
        )
        log.warning("%s", message, extra={"_shown_by_progress": True})
        self.observer.stopping(message)
        scope = self.calls_scope
        scope.deadline = min(scope.deadline, anyio.current_time() + grace)

    def abandon(self) -> None:
        """Stopped from outside again: the calls in flight are abandoned now."""
        message = "stopping now: the calls in flight are abandoned"
        log.warning("%s", message, extra={"_shown_by_progress": True})
        self.observer.stopping(message)
        self.calls_scope.cancel()

    # -- the night's ledger ---------------------------------------------------------------

    async def save_ledger(self, *, final: bool = False) -> str | None:
        self._ledger_dirty = False
        return await self.money.save(final=final)

    async def keep_ledger(self) -> None:
        while True:
            await anyio.sleep(LEDGER_INTERVAL)
            if self._ledger_dirty:
                await self.save_ledger()

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

    async def finish(self) -> list[JobFinal]:
        """Give every job that did not complete its status and reason; save its counters."""
        reason = self.stopped.reason if self.stopped else "stopped before its pages were fetched"
        self.schedule.end_active(reason)
        finals = []
        for job in self.jobs:
            state = self.schedule.job(job.key)
            if state.status != "complete" or job.output is None:
                if job.checkpoint is not None:
                    try:
                        job.checkpoint = await job.writer.save(job.counters())
                    except OutputError as exc:
                        job.record(CallError(kind="output", message=str(exc)))
                final = self._final(job)
                self.observer.job_finished(self._snapshot(job), final)
                if self.on_job_end is not None:
                    await self.on_job_end(final)
                finals.append(final)
            else:
                finals.append(self._final(job))
        await self.save_ledger(final=True)
        return finals


async def crawl(
    jobs: Sequence[CrawlJob],
    *,
    fetch: Fetch,
    folder: RunFolder,
    settings: RunSettings,
    ledger: Ledger | None = None,
    observer: CrawlObserver | None = None,
    on_job_end: Callable[[JobFinal], Awaitable[None]] | None = None,
    control: CrawlControl | None = None,
    rng: random.Random | None = None,
    endpoint: str = "the API",
    prices: PriceList = PRICE_LISTS["dataforseo"],
) -> CrawlResult:
    """Crawl every job into ``folder``; resume what an earlier run of the date left.

    ``fetch`` sends one call (see :data:`Fetch`). ``ledger`` is what earlier invocations
    of the night spent (the budget holds for the night). ``on_job_end`` is awaited once
    per job as it ends (complete jobs before their progress files are removed), so that
    its manifest is written then. ``control`` stops the crawl from outside while it
    sends calls (:class:`~intersect_batch.stop.CrawlControl`: the process's signal
    handlers use it): a stop lets the calls in flight finish within ``settings.grace``,
    an abandon drops them at once. ``prices`` is the provider's price list.
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
        prices=prices,
    )
    await crawler.prepare()
    # The night's ledger exists from the start: missing later, it was removed.
    await crawler.save_ledger()
    control = control or CrawlControl()
    async with anyio.create_task_group() as outer:
        outer.start_soon(crawler.observer.watch)
        outer.start_soon(crawler.keep_ledger)
        control.attach(crawler.stop, crawler.abandon)
        try:
            with crawler.calls_scope:
                async with anyio.create_task_group() as calls:
                    await crawler.dispatch(calls)
        finally:
            control.detach()
        if crawler.calls_scope.cancelled_caught:
            log.warning("calls still in flight were abandoned; their pages are fetched again")
        outer.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        finals = await crawler.finish()
    return CrawlResult(
        jobs=tuple(finals),
        stop=crawler.stopped,
        started_at=started_at,
        finished_at=_now_iso(),
        duration_s=time.monotonic() - started,
        calls=crawler.calls,
        retries=crawler.retries,
        cost_usd=round(crawler.cost_usd, 8),
        spent_usd=round(crawler.money.spent_usd, 8),
        throttled_s=round(crawler.schedule.throttled_seconds, 3),
    )
