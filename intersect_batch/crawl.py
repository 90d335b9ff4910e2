"""The crawl: every job's pages through one set of shared limits, each page exactly once.

This module is the glue between the pure decisions and the I/O: the
:class:`~intersect_batch.schedule.Schedule` says what to send, the
:class:`~intersect_batch.pacing.Pacer` when, the night's money
(:class:`~intersect_batch.money.NightMoney`) whether it may be paid for, a ``fetch``
function (the seam: HTTP in a run, scripted answers in tests) sends it
(:class:`~intersect_batch.calls.CallLife`), and each job's writer makes the answer
durable (:class:`~intersect_batch.jobs.JobBook`). A call takes an in-flight slot
(``limits.concurrency``), then the schedule's next page, then the budget's reservation,
then its rate token, right before it is sent.

Why a run stops is one value (:class:`~intersect_batch.stop.Stop`), set here in one
place; the process stops the crawl from outside through a
:class:`~intersect_batch.stop.CrawlControl`. Nothing here raises for a job's or a call's
failure: those end in the jobs' statuses.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from intersect_batch.calls import Call, CallLife, Fetch, Reply, Unread, failure_of, page_of
from intersect_batch.errors import ApiError
from intersect_batch.jobs import (
    CallError,
    CrawlJob,
    CrawlObserver,
    JobBook,
    JobFinal,
    JobSnapshot,
    StoreFactory,
    now_iso,
)
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger
from intersect_batch.money import NightMoney
from intersect_batch.pacing import PRICE_LISTS, PriceList
from intersect_batch.schedule import Done, Schedule, Send
from intersect_batch.settings import RunSettings
from intersect_batch.stop import CrawlControl, Stop
from intersect_batch.store import JobStore

__all__ = [
    "Call",
    "CallError",
    "CrawlControl",
    "CrawlJob",
    "CrawlObserver",
    "CrawlResult",
    "Fetch",
    "JobFinal",
    "JobSnapshot",
    "Reply",
    "Stop",
    "Unread",
    "crawl",
    "failure_of",
    "page_of",
]

log = logging.getLogger("intersect_batch")

#: Seconds between two saves of the night's ledger while calls go on.
LEDGER_INTERVAL = 5.0


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
    #: Jobs that never started: no call went out for them, and no earlier invocation left
    #: anything of them on disk. They have no entry in ``jobs``, no file, no record.
    not_started: tuple[str, ...] = ()

    @property
    def run_fatal(self) -> ApiError | None:
        """The API's error when the account or the network stopped the run."""
        return None if self.stop is None else self.stop.error

    @property
    def interrupted_by(self) -> int | None:
        """The signal that interrupted the run, if one did."""
        return None if self.stop is None else self.stop.signum


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
        store: StoreFactory,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.schedule = Schedule(retry=settings.retry, pages_ahead=settings.pages_ahead, rng=rng)
        self.book = JobBook(
            jobs,
            folder=folder,
            schedule=self.schedule,
            observer=observer,
            on_job_end=on_job_end,
            store=store,
        )
        self.money = NightMoney(
            folder,
            cap=settings.budget_usd,
            ledger=ledger,
            prices=prices,
            activity=lambda: (self.calls.retries, self.schedule.throttled_seconds),
        )
        self.calls = CallLife(
            fetch=fetch,
            book=self.book,
            schedule=self.schedule,
            money=self.money,
            settings=settings,
            observer=observer,
            endpoint=describe_endpoint,
            stop=self._stop,
            stopped=lambda: self.stopped,
            notify=self._notify,
        )
        self.calls_started = 0
        self.stopped: Stop | None = None
        self.calls_scope = anyio.CancelScope()
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_for_change(self, until: float | None) -> None:
        changed = self._changed
        timeout = None if until is None else max(0.0, until - anyio.current_time())
        with anyio.move_on_after(timeout):
            await changed.wait()

    async def dispatch(self, group: anyio.abc.TaskGroup) -> None:
        """Hand out calls until the schedule says done, or a stop says no more."""
        while True:
            token = object()
            await self.calls.slots.acquire_on_behalf_of(token)
            decision = self.schedule.next(anyio.current_time())
            while not isinstance(decision, Send | Done):
                await self._wait_for_change(decision.until)
                decision = self.schedule.next(anyio.current_time())
            if isinstance(decision, Done):
                self.calls.slots.release_on_behalf_of(token)
                return
            job = self.book[decision.job]
            cap = self.settings.max_calls
            if cap and self.calls_started >= cap:
                self.calls.slots.release_on_behalf_of(token)
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
                self.calls.slots.release_on_behalf_of(token)
                self.schedule.unsent(job.key, decision.page)
                if self.money.halt is None and self.calls.in_flight:
                    # Calls in flight may cost less than their worst case, or tell the
                    # price: wait for one to settle, then ask again.
                    await self._wait_for_change(None)
                    continue
                self._stop(Stop("budget", self.money.refusal(decision.limit)))
                return
            self.calls.in_flight += 1
            self.calls_started += 1
            group.start_soon(self.calls.run, job, decision, token, reservation)

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
        self.schedule.halt()
        if stop.hard:
            self.calls.hold_back()
        self._notify()

    def stop(self, stop: Stop) -> None:
        """Stopped from outside: the calls in flight get ``settings.grace`` seconds."""
        self._stop(stop)
        grace = self.settings.grace
        # The calls at the API: those still waiting for their rate token are not sent.
        at_api = self.calls.at_api
        calls = "call" if at_api == 1 else "calls"
        again = "Ctrl-C" if stop.signum == signal.SIGINT else "a second signal"
        message = (
            f"waiting up to {grace:.0f} s for {at_api} {calls} in flight; {again} again to stop now"
        )
        log.warning(message, extra={"_shown_by_progress": True})
        self.observer.stopping(message)
        scope = self.calls_scope
        scope.deadline = min(scope.deadline, anyio.current_time() + grace)

    def abandon(self) -> None:
        """Stopped from outside again: the calls in flight are abandoned now."""
        message = "stopping now: the calls in flight are abandoned"
        log.warning(message, extra={"_shown_by_progress": True})
        self.observer.stopping(message)
        self.calls_scope.cancel()

    # -- the night's ledger ---------------------------------------------------------------

    async def save_ledger(self, *, final: bool = False) -> str | None:
        self.calls.ledger_dirty = False
        return await self.money.save(final=final)

    async def keep_ledger(self) -> None:
        while True:
            await anyio.sleep(LEDGER_INTERVAL)
            if self.calls.ledger_dirty:
                await self.save_ledger()

    async def finish(self) -> tuple[list[JobFinal], list[str]]:
        """Every job's end, and the jobs that never started; the night's ledger written
        with what was really spent."""
        reason = self.stopped.reason if self.stopped else "stopped before its pages were fetched"
        ended = await self.book.finish(reason)
        await self.save_ledger(final=True)
        return ended


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
    store: StoreFactory = JobStore,
) -> CrawlResult:
    """Crawl every job into ``folder``; resume what an earlier run of the date left.

    ``fetch`` sends one call (see :data:`Fetch`). ``ledger`` is what earlier invocations
    of the night spent (the budget holds for the night). ``on_job_end`` is awaited once
    per job as it ends (complete jobs before their progress files are removed), so that
    its manifest is written then. ``control`` stops the crawl from outside while it
    sends calls (:class:`~intersect_batch.stop.CrawlControl`: the process's signal
    handlers use it): a stop lets the calls in flight finish within ``settings.grace``,
    an abandon drops them at once. ``prices`` is the provider's price list; ``store``
    makes each job's store (its files).
    """
    started = time.monotonic()
    started_at = now_iso()
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
        store=store,
    )
    await crawler.book.prepare()
    # The night's ledger exists from the start: missing later, it was removed.
    await crawler.save_ledger()
    control = control or CrawlControl()
    async with anyio.create_task_group() as outer:
        outer.start_soon(crawler.observer.watch)
        outer.start_soon(crawler.keep_ledger)
        control.attach(crawler.stop, crawler.abandon)
        try:
            with crawler.calls_scope:
                async with anyio.create_task_group() as group:
                    await crawler.dispatch(group)
        finally:
            control.detach()
        if crawler.calls_scope.cancelled_caught:
            log.warning("calls still in flight were abandoned; their pages are fetched again")
        outer.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        finals, not_started = await crawler.finish()
    return CrawlResult(
        jobs=tuple(finals),
        stop=crawler.stopped,
        started_at=started_at,
        finished_at=now_iso(),
        duration_s=time.monotonic() - started,
        calls=crawler.calls.calls,
        retries=crawler.calls.retries,
        cost_usd=round(crawler.calls.cost_usd, 8),
        spent_usd=round(crawler.money.spent_usd, 8),
        throttled_s=round(crawler.schedule.throttled_seconds, 3),
        not_started=tuple(not_started),
    )
