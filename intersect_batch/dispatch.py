"""The crawl: every job's pages through one set of shared limits, each page exactly once.

One scheduler feeds the ready pages of all jobs to the account's slots. A job's page 0
tells its total_count; then all its remaining pages become ready work, so a run of many
small jobs and a run of one huge job both keep every slot busy. The in-flight slot is
taken first and the rate token last, right before a call is sent; transient failures go
back into the queue with a back-off, run-fatal ones stop the dispatching at once (at most
the calls already in flight are answered), job-fatal ones end only their job.

Every page is durable before it counts (see :mod:`intersect_batch.store`), so a run that
is killed, interrupted or out of budget continues where it stopped when it is run again.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import logging
import random
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import anyio
import anyio.abc
import anyio.to_thread
from aiolimiter import AsyncLimiter

from intersect_batch.client import FetchedPage, read_answer, send_task
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    OutputError,
    RunFatalApiError,
)
from intersect_batch.manifest import (
    CallError,
    JobManifest,
    JobStatus,
    TotalCount,
    read_manifest,
    write_json,
)
from intersect_batch.plan import fingerprint, page_count, page_limit
from intersect_batch.providers import Credentials, Provider
from intersect_batch.settings import (
    CALL_PRICE_USD,
    ITEM_PRICE_USD,
    AnswerCaps,
    Limits,
    RunSettings,
)
from intersect_batch.status import SLOWDOWN_CODES
from intersect_batch.store import JobStore, PageIn, remove_state_dir_if_empty, state_dir

if TYPE_CHECKING:
    from intersect_batch.config import JobEntry

__all__ = ["Budget", "CrawlResult", "JobRun", "Pacer", "RunObserver", "crawl"]

log = logging.getLogger("intersect_batch")

_CAPS = AnswerCaps()


class RunObserver:
    """Hooks for progress displays; every method does nothing unless overridden."""

    def job_started(self, job: JobRun) -> None:
        """A job is about to be crawled (or was found complete already)."""

    def page_done(self, job: JobRun, page: int, items: int, cost: float) -> None:
        """One page is durable."""

    def call_retried(self, job: JobRun, offset: int, error: ApiError, delay: float) -> None:
        """A call failed transiently and will be sent again after ``delay`` seconds."""

    def job_finished(self, job: JobRun, manifest: JobManifest) -> None:
        """A job ended (complete, failed or partial) and its manifest is written."""

    async def watch(self) -> None:
        """Runs beside the crawl (e.g. a periodic report); cancelled when the crawl ends."""


class Pacer:
    """The run's rate: spread calls, a small burst at most, and a shared pause on refusals.

    aiolimiter's default lets ``max_rate`` calls through at once; here the bucket holds
    ``burst`` calls and drains one per interval, so no quota window ever holds more than
    the quota (see :class:`~intersect_batch.settings.Limits`). When the API refuses a call
    for rate or concurrency, every call waits.
    """

    def __init__(self, limits: Limits) -> None:
        burst = max(1, min(limits.burst, limits.rate_per_minute))
        self._limiter = AsyncLimiter(burst, burst * limits.interval)
        self._pause_until = 0.0

    def slow_down(self, seconds: float) -> None:
        """Hold every call for ``seconds`` from now."""
        self._pause_until = max(self._pause_until, anyio.current_time() + seconds)

    async def wait(self) -> None:
        """Return when the next call may be sent."""
        while True:
            delay = self._pause_until - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            await self._limiter.acquire()
            if self._pause_until <= anyio.current_time():
                return


class Budget:
    """A spending cap: no call starts whose worst case would take spending over it.

    The worst case of a call is the documented price for its ``limit``, scaled up by the
    highest price the provider has reported so far relative to the documented one.
    """

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent = 0.0
        self.reserved = 0.0
        self._price_factor = 1.0

    def worst_case(self, limit: int) -> float:
        """What one call for ``limit`` items can cost."""
        return (CALL_PRICE_USD + ITEM_PRICE_USD * limit) * self._price_factor

    def reserve(self, limit: int) -> float | None:
        """Set aside a call's worst case; ``None`` when that would break the cap."""
        amount = self.worst_case(limit)
        if self.limit_usd is not None and self.spent + self.reserved + amount > (
            self.limit_usd + 1e-9
        ):
            return None
        self.reserved += amount
        return amount

    def settle(self, reservation: float, cost: float, items: int) -> None:
        """Replace a reservation by what the call really cost."""
        self.reserved = max(0.0, self.reserved - reservation)
        self.spent += cost
        documented = CALL_PRICE_USD + ITEM_PRICE_USD * items
        if cost > documented:
            self._price_factor = max(self._price_factor, cost / documented)


@dataclass(eq=False)
class _Pending:
    """A page waiting for its job's next group commit."""

    page: PageIn
    state: Literal["waiting", "written", "failed"] = "waiting"
    error: OutputError | None = None


@dataclass(eq=False)
class JobRun:
    """One job's state during a run."""

    entry: JobEntry
    seq: int
    fingerprint: str
    store: JobStore
    params: dict[str, Any]
    status: JobStatus | None = None
    reason: str | None = None
    total: int | None = None
    planned: int | None = None
    next_page: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    calls: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    resumed_pages: int = 0
    errors: list[CallError] = field(default_factory=list)
    started_at: str = ""
    started: float = 0.0
    duration: float = 0.0
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    pending: list[_Pending] = field(default_factory=list)
    completing: bool = False
    manifest: JobManifest | None = None

    @property
    def job_id(self) -> str:
        """The job's id, as in its config."""
        return self.entry.job.id

    @property
    def page_size(self) -> int:
        """Items per page."""
        return self.entry.job.page_size

    @property
    def active(self) -> bool:
        """Still crawling: neither ended nor stopped."""
        return self.status is None

    def replan(self, total: int) -> None:
        """Plan the pages for the latest total_count: grow with it, shrink what is unsent."""
        self.total = total
        wanted = page_count(total, self.page_size, self.entry.job.max_items)
        self.planned = max(wanted, self.next_page)

    def counters(self) -> dict[str, float]:
        """What the checkpoint records besides the pages."""
        return {"calls": self.calls, "retries": self.retries, "cost_usd": self.cost_usd}


@dataclass(frozen=True)
class CrawlResult:
    """What a crawl did: its jobs, and why it stopped early if it did."""

    jobs: list[JobRun]
    stop_reason: str | None
    run_fatal: ApiError | None
    interrupted_by: int | None
    started_at: str
    finished_at: str
    duration_s: float
    budget_spent: float


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _Crawler:
    def __init__(
        self,
        entries: Sequence[JobEntry],
        *,
        provider: Provider,
        credentials: Credentials,
        settings: RunSettings,
        session: aiohttp.ClientSession,
        observer: RunObserver,
        rng: random.Random,
    ) -> None:
        self.provider = provider
        self.credentials = credentials
        self.settings = settings
        self.session = session
        self.observer = observer
        self.rng = rng
        self.run_dir = settings.run_dir
        self.pacer = Pacer(settings.limits)
        self.budget = Budget(settings.budget_usd)
        self.slots = anyio.CapacityLimiter(settings.limits.concurrency)
        self.memory = anyio.Semaphore(max(1, settings.pages_in_memory))
        self.jobs = [
            JobRun(
                entry=entry,
                seq=seq,
                fingerprint=fingerprint(
                    entry.job.api_params(), entry.job.page_size, entry.job.max_items
                ),
                store=JobStore(self.run_dir, entry.job.id),
                params=entry.job.api_params(),
            )
            for seq, entry in enumerate(entries)
        ]
        self.probes: deque[JobRun] = deque()
        self.retry_heap: list[tuple[float, int, int, JobRun]] = []
        self.running: list[JobRun] = []
        self.in_flight = 0
        self.stop_reason: str | None = None
        self.run_fatal: ApiError | None = None
        self.interrupted_by: int | None = None
        self._changed = anyio.Event()
        self._unsent: set[anyio.CancelScope] = set()

    # -- preparing ------------------------------------------------------------------------

    async def prepare(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.fresh:
            await anyio.to_thread.run_sync(
                lambda: shutil.rmtree(state_dir(self.run_dir), ignore_errors=True)
            )
        for job in self.jobs:
            await self._prepare_job(job)

    async def _prepare_job(self, job: JobRun) -> None:
        job.started = time.monotonic()
        job.started_at = _now_iso()
        manifest_path = self.run_dir / f"{job.job_id}.manifest.json"
        previous = None if self.settings.fresh else read_manifest(manifest_path)
        if (
            previous is not None
            and previous.status == "complete"
            and previous.fingerprint == job.fingerprint
            and job.store.final_path.exists()
            and not job.store.checkpoint_path.exists()
        ):
            job.status = "complete"
            job.reason = "already complete"
            job.manifest = previous
            self.observer.job_started(job)
            log.info("job already complete: skipped", extra={"job": job.job_id})
            return
        try:
            checkpoint = await anyio.to_thread.run_sync(job.store.open, job.fingerprint)
        except OutputError as exc:
            self._fail(job, str(exc), CallError(kind="output", message=str(exc)))
            return
        job.calls, job.retries, job.cost_usd = (
            checkpoint.calls,
            checkpoint.retries,
            checkpoint.cost_usd,
        )
        job.started_at = checkpoint.started_at
        job.done = job.store.pages_done
        job.resumed_pages = len(job.done)
        self.observer.job_started(job)
        if checkpoint.finalized:
            await self._complete(job)
            return
        if checkpoint.total_last is not None:
            job.replan(checkpoint.total_last)
            job.next_page = 0
            self._advance(job)
            self.running.append(job)
            log.info(
                "job resumed",
                extra={"job": job.job_id, "pages_on_disk": len(job.done)},
            )
            if self._job_finished(job):
                await self._complete(job)
        else:
            self.probes.append(job)

    # -- scheduling -----------------------------------------------------------------------

    def _advance(self, job: JobRun) -> None:
        while job.next_page in job.done:
            job.next_page += 1

    def _window_end(self, job: JobRun) -> int:
        checkpoint = job.store.checkpoint
        written = checkpoint.next_page if checkpoint is not None else 0
        return written + self.settings.pages_ahead

    def _pick(self) -> tuple[JobRun, int] | None:
        now = anyio.current_time()
        while self.probes:
            job = self.probes.popleft()
            if job.active:
                job.next_page = max(job.next_page, 1)
                return job, 0
        while self.retry_heap and self.retry_heap[0][0] <= now:
            _, _, page, job = heapq.heappop(self.retry_heap)
            if job.active:
                return job, page
        for job in self.running:
            if not job.active or job.planned is None:
                continue
            self._advance(job)
            if job.next_page < job.planned and job.next_page < self._window_end(job):
                page = job.next_page
                job.next_page += 1
                return job, page
        return None

    def _has_pending(self) -> bool:
        return bool(self.probes or self.retry_heap or self.in_flight)

    async def _next_work(self) -> tuple[JobRun, int] | None:
        while True:
            if self.stop_reason is not None:
                return None
            picked = self._pick()
            if picked is not None:
                return picked
            self.running = [job for job in self.running if job.active]
            if not self._has_pending():
                return None
            timeout = None
            if self.retry_heap:
                timeout = max(0.0, self.retry_heap[0][0] - anyio.current_time())
            changed = self._changed
            with anyio.move_on_after(timeout):
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def dispatch(self, calls: anyio.abc.TaskGroup) -> None:
        while True:
            token = object()
            await self.slots.acquire_on_behalf_of(token)
            picked = await self._next_work()
            if picked is None:
                self.slots.release_on_behalf_of(token)
                return
            job, page = picked
            limit = page_limit(page, job.page_size, job.entry.job.max_items)
            reservation = self.budget.reserve(limit)
            if reservation is None:
                self.slots.release_on_behalf_of(token)
                self._requeue(job, page)
                if self.in_flight:
                    # Calls in flight may cost less than their worst case: wait for one.
                    changed = self._changed
                    await changed.wait()
                    continue
                self.stop(
                    f"budget: the next call could cost {self.budget.worst_case(limit):.5f} USD"
                    f" and {self.budget.spent:.5f} of {self.settings.budget_usd} USD are spent"
                )
                return
            self.in_flight += 1
            calls.start_soon(self._call, job, page, limit, token, reservation)

    def _requeue(self, job: JobRun, page: int, delay: float = 0.0) -> None:
        if page == 0 and job.planned is None and delay <= 0:
            self.probes.appendleft(job)
            return
        due = anyio.current_time() + delay
        heapq.heappush(self.retry_heap, (due, job.seq, page, job))

    def stop(self, reason: str) -> None:
        """Send no more calls; those in flight are still answered and written."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.warning("stopping: %s", reason)
        for scope in self._unsent:
            scope.cancel()
        self._notify()

    # -- one call -------------------------------------------------------------------------

    async def _call(
        self, job: JobRun, page: int, limit: int, token: object, reservation: float
    ) -> None:
        offset = page * job.page_size
        result: FetchedPage | None = None
        error: ApiError | None = None
        stored = False
        holds_memory = False

        async def before_body() -> None:
            nonlocal holds_memory
            await self.memory.acquire()
            holds_memory = True

        try:
            try:
                with anyio.CancelScope() as unsent:
                    self._unsent.add(unsent)
                    try:
                        await self.pacer.wait()
                    finally:
                        self._unsent.discard(unsent)
                if unsent.cancelled_caught or self.stop_reason is not None or not job.active:
                    self._requeue(job, page)
                    return
                job.calls += 1
                task = {**job.params, "offset": offset, "limit": limit}
                try:
                    answer = await send_task(
                        self.session,
                        self.provider,
                        self.credentials,
                        task,
                        timeouts=self.settings.timeouts,
                        caps=_CAPS,
                    )
                    # Compressed answers wait here; inflated ones are held pages_in_memory.
                    await before_body()
                    result = await anyio.to_thread.run_sync(
                        functools.partial(
                            read_answer,
                            answer,
                            caps=_CAPS,
                            scrubber=self.credentials.scrubber(),
                        )
                    )
                except ApiError as exc:
                    error = exc.at(job_id=job.job_id, offset=offset)
                else:
                    job.cost_usd += result.cost
                    stored = await self._store_page(job, page, result)
            finally:
                # A call holds its slot until its page is durable, so that a crash never
                # loses more paid pages than there are slots; finishing the job needs none.
                if result is not None:
                    self.budget.settle(reservation, result.cost, len(result.lines))
                else:
                    self.budget.settle(reservation, 0.0, 0)
                if holds_memory:
                    self.memory.release()
                self.slots.release_on_behalf_of(token)
                self._notify()
            if error is not None:
                await self._failed_call(job, page, error)
            elif stored and job.active and self._job_finished(job):
                await self._complete(job)
        finally:
            self.in_flight -= 1
            self._notify()

    async def _store_page(self, job: JobRun, page: int, result: FetchedPage) -> bool:
        """Make a page durable; False when the job's output cannot be written.

        Pages of a job that arrive while one of its writes is under way wait for it, then
        the first of them writes them all with one fsync and one checkpoint.
        """
        total = result.total_count if result.total_count is not None else result.items_count
        job.replan(total)
        job.attempts.pop(page, None)
        if page == 0 and job not in self.running:
            self.running.append(job)
        entry = _Pending(PageIn(page, result.lines, total))
        job.pending.append(entry)
        async with job.lock:
            if entry.state == "waiting":
                batch, job.pending = job.pending, []
                try:
                    await anyio.to_thread.run_sync(
                        lambda: job.store.put_many(
                            [item.page for item in batch], counters=job.counters()
                        )
                    )
                except OutputError as exc:
                    for item in batch:
                        item.state, item.error = "failed", exc
                else:
                    for item in batch:
                        item.state = "written"
        if entry.error is not None:
            self._fail(job, str(entry.error), CallError(kind="output", message=str(entry.error)))
            return False
        job.done.add(page)
        log.debug(
            "page written",
            extra={"job": job.job_id, "offset": page * job.page_size, "items": len(result.lines)},
        )
        self.observer.page_done(job, page, len(result.lines), result.cost)
        return True

    @staticmethod
    def _job_finished(job: JobRun) -> bool:
        # Every planned page appended in order: none missing, none left in the spool.
        checkpoint = job.store.checkpoint
        return (
            job.planned is not None
            and checkpoint is not None
            and checkpoint.next_page >= job.planned
        )

    async def _failed_call(self, job: JobRun, page: int, error: ApiError) -> None:
        offset = page * job.page_size
        record = CallError(
            kind=error.kind,
            message=error.message,
            offset=offset,
            http_status=error.http_status,
            status_code=error.status_code,
        )
        if isinstance(error, RunFatalApiError):
            job.errors.append(record)
            self.run_fatal = self.run_fatal or error
            self._requeue(job, page)
            self.stop(f"the API refused the account: {error.describe()}")
            return
        if isinstance(error, JobFatalApiError):
            self._fail(job, error.describe(), record)
            return
        attempts = job.attempts.get(page, 0) + 1
        job.attempts[page] = attempts
        if len(job.errors) < 50:
            job.errors.append(record)
        if attempts >= self.settings.retry.attempts:
            self._fail(job, f"gave up after {attempts} attempts: {error.describe()}", None)
            return
        policy = self.settings.retry
        slowdown = error.status_code in SLOWDOWN_CODES or error.http_status == 429
        # The server's Retry-After wins over the back-off, within the same cap.
        retry_after = None if error.retry_after is None else min(error.retry_after, policy.cap)
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self.rng.uniform(0, min(policy.cap, policy.base * 2 ** (attempts - 1)))
        if slowdown:
            pause = retry_after if retry_after is not None else policy.slowdown
            self.pacer.slow_down(pause)
            delay = max(delay, pause)
        job.retries += 1
        log.warning(
            "call failed, retrying in %.2fs: %s",
            delay,
            error.message,
            extra={"job": job.job_id, "offset": offset, "attempt": attempts},
        )
        self.observer.call_retried(job, offset, error, delay)
        self._requeue(job, page, delay)

    # -- ending jobs ----------------------------------------------------------------------

    def _fail(self, job: JobRun, reason: str, record: CallError | None) -> None:
        if not job.active:
            return
        if record is not None:
            job.errors.append(record)
        job.status = "failed"
        job.reason = reason

    async def _complete(self, job: JobRun) -> None:
        # Every page of a group commit sees the job finished: the first one completes it.
        if job.completing:
            return
        job.completing = True
        try:
            async with job.lock:
                await anyio.to_thread.run_sync(job.store.finalize)
        except OutputError as exc:
            self._fail(job, str(exc), CallError(kind="output", message=str(exc)))
            return
        job.status = "complete"
        await self._write_manifest(job)
        await anyio.to_thread.run_sync(job.store.close)

    async def finish(self) -> None:
        """Give every job that did not complete its status, reason and manifest."""
        for job in self.jobs:
            if job.status == "complete" and job.manifest is not None:
                continue
            if job.active:
                job.status = "partial"
                job.reason = self.stop_reason or "stopped before its pages were fetched"
            if job.store.checkpoint is not None:
                try:
                    async with job.lock:
                        await anyio.to_thread.run_sync(job.store.save, job.counters())
                except OutputError as exc:
                    job.errors.append(CallError(kind="output", message=str(exc)))
            await self._write_manifest(job)
        remove_state_dir_if_empty(self.run_dir)

    async def _write_manifest(self, job: JobRun) -> None:
        job.duration = time.monotonic() - job.started
        checkpoint = job.store.checkpoint
        totals = TotalCount()
        items_written = items_received = duplicates = pages = 0
        if checkpoint is not None:
            first, last = checkpoint.total_first, checkpoint.total_last
            low, high = checkpoint.total_min, checkpoint.total_max
            drift = (high - low) / high if high and low is not None else 0.0
            totals = TotalCount(
                first=first,
                last=last,
                min=low,
                max=high,
                drift=round(drift, 6),
                flagged=drift > self.settings.drift_threshold,
            )
            items_written = checkpoint.items_written
            items_received = checkpoint.items_received
            duplicates = checkpoint.duplicates_dropped
            pages = checkpoint.next_page + len(checkpoint.spooled)
        output = None
        if job.status == "complete":
            output = job.store.final_path.name
        manifest = JobManifest(
            job_id=job.job_id,
            config_file=str(job.entry.file),
            config_line=job.entry.line,
            fingerprint=job.fingerprint,
            request={
                **job.params,
                "page_size": job.page_size,
                "max_items": job.entry.job.max_items,
            },
            status=job.status or "partial",
            reason=job.reason,
            output=output,
            total_count=totals,
            items_written=items_written,
            items_received=items_received,
            duplicates_dropped=duplicates,
            pages=pages,
            pages_planned=job.planned,
            calls=job.calls,
            retries=job.retries,
            cost_usd=round(job.cost_usd, 6),
            started_at=job.started_at,
            finished_at=_now_iso(),
            resumed_pages=job.resumed_pages,
            errors=job.errors,
        )
        if totals.flagged:
            log.warning(
                "total_count moved by %.1f%% while paging",
                totals.drift * 100,
                extra={"job": job.job_id},
            )
        try:
            await anyio.to_thread.run_sync(
                write_json, self.run_dir / f"{job.job_id}.manifest.json", manifest
            )
        except OSError as exc:
            log.error("cannot write the manifest: %s", exc, extra={"job": job.job_id})
        job.manifest = manifest
        level = {"complete": logging.INFO, "partial": logging.WARNING}.get(
            manifest.status, logging.ERROR
        )
        log.log(
            level,
            "job %s%s",
            manifest.status,
            f": {job.reason}" if job.reason else "",
            extra={
                "job": job.job_id,
                "status": manifest.status,
                "items": manifest.items_written,
                "pages": manifest.pages,
                "calls": manifest.calls,
                "retries": manifest.retries,
                "cost_usd": manifest.cost_usd,
            },
        )
        self.observer.job_finished(job, manifest)

    # -- signals --------------------------------------------------------------------------

    async def watch_signals(self, calls_scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.interrupted_by = signum
                self.stop(f"interrupted by {signal.Signals(signum).name}")
                break
        with anyio.move_on_after(self.settings.grace):
            await anyio.sleep_forever()
        log.warning("calls still in flight after %.0fs: cancelling them", self.settings.grace)
        calls_scope.cancel()


async def crawl(
    entries: Sequence[JobEntry],
    *,
    provider: Provider,
    credentials: Credentials,
    settings: RunSettings,
    observer: RunObserver | None = None,
    handle_signals: bool = False,
    rng: random.Random | None = None,
    session_factory: Callable[[], aiohttp.ClientSession] | None = None,
) -> CrawlResult:
    """Crawl every job into ``settings.run_dir``; resume what an earlier run left.

    Never raises for a job's or a call's failure: those end up in the jobs' statuses and
    manifests. ``handle_signals`` turns SIGINT / SIGTERM into a clean stop.
    """
    started = time.monotonic()
    started_at = _now_iso()
    if session_factory is not None:
        session = session_factory()
    else:
        # A few spare connections: a slot is released just before its connection is.
        connector = aiohttp.TCPConnector(limit=settings.limits.concurrency + 4)
        session = aiohttp.ClientSession(connector=connector)
    crawler = _Crawler(
        entries,
        provider=provider,
        credentials=credentials,
        settings=settings,
        session=session,
        observer=observer or RunObserver(),
        rng=rng or random.Random(),
    )
    async with session:
        await crawler.prepare()
        async with anyio.create_task_group() as outer:
            calls_scope = anyio.CancelScope()
            if handle_signals:
                outer.start_soon(crawler.watch_signals, calls_scope)
            outer.start_soon(crawler.observer.watch)
            with calls_scope:
                async with anyio.create_task_group() as calls:
                    await crawler.dispatch(calls)
            outer.cancel_scope.cancel()
        await crawler.finish()
    return CrawlResult(
        jobs=crawler.jobs,
        stop_reason=crawler.stop_reason,
        run_fatal=crawler.run_fatal,
        interrupted_by=crawler.interrupted_by,
        started_at=started_at,
        finished_at=_now_iso(),
        duration_s=time.monotonic() - started,
        budget_spent=crawler.budget.spent,
    )
