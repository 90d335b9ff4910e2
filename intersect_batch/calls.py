"""The life of one call: its rate token, the answer, its money settled, its page durable.

The order of a call's life (see :mod:`intersect_batch.crawl` for how calls are handed out):

1. the rate token, right before the call is sent (the slot and the budget's reservation
   came first);
2. the reply (:data:`Fetch`): over HTTP an :class:`Unread` answer, its headers in and
   its body read up to ``caps.read_ahead_bytes`` (a larger body waits, not read on);
   then a place in memory (``pages_in_memory``); only then is the body read on and
   decoded (:meth:`Unread.read`), so memory does not grow with the calls in flight.
   A fake's reply is the page itself, already decoded;
3. the slot is released once the page is decoded: the writer's queue is bounded by the
   pages in memory, so a crash loses at most ``concurrency + pages_in_memory`` paid pages;
4. the page is durable, and its place in memory released (as it is when the call
   fails); the schedule learns the writer's position; a job whose every planned page is
   in place is finalized (its file renamed into place) once.

A call is counted when its outcome says it reached the API
(:class:`~intersect_batch.money.Settled`), never counted first and taken back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from intersect_batch.answer import BadAnswerError, FetchedPage
from intersect_batch.checkpoint import PageIn
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    OutputError,
    RunFatalApiError,
    ThrottledApiError,
    UnreachableApiError,
)
from intersect_batch.jobs import CallError, CrawlObserver, JobBook, JobRecord
from intersect_batch.jobstate import Hole
from intersect_batch.money import NightMoney, Reservation, Settled
from intersect_batch.pacing import Pacer
from intersect_batch.schedule import (
    Failure,
    GaveUp,
    JobEnded,
    Retry,
    RunStopped,
    Schedule,
    Send,
)
from intersect_batch.settings import RunSettings
from intersect_batch.stop import Stop
from intersect_batch.suspicion import only_seen
from intersect_batch.wire import item_key

__all__ = ["Call", "CallLife", "Fetch", "Reply", "Unread", "failure_of", "page_of"]

log = logging.getLogger("intersect_batch")


@dataclass(frozen=True, slots=True)
class Call:
    """One call to make: the task to send, and which job and offset it is for."""

    job_id: str
    task: dict[str, Any]
    offset: int
    limit: int


class Unread(Protocol):
    """An answer whose body is not yet decoded (over HTTP, perhaps not yet read whole)."""

    async def read(self) -> FetchedPage:
        """The page: the rest of the body read, then decoded off the event loop; raises
        the ApiError the answer is."""
        ...

    def discard(self) -> None:
        """Drop the answer, closing a connection still open; nothing once it was read."""
        ...


#: What a call brings back: its page, or an answer still to be read (:class:`Unread`).
Reply = FetchedPage | Unread

#: The seam between the crawl and the network: send one call, return its reply or raise
#: an ApiError. A fake is a plain function that returns the page (or raises); the crawl
#: takes a place in memory before it reads an :class:`Unread` reply.
Fetch = Callable[[Call], Awaitable[Reply]]


async def page_of(reply: Reply) -> FetchedPage:
    """The page a reply holds: an :class:`Unread` one is read now, or dropped if that fails."""
    if isinstance(reply, FetchedPage):
        return reply
    try:
        return await reply.read()
    finally:
        reply.discard()


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


class CallLife:
    """The calls of a crawl in flight, and what the crawl counts of them."""

    def __init__(
        self,
        *,
        fetch: Fetch,
        book: JobBook,
        schedule: Schedule,
        money: NightMoney,
        settings: RunSettings,
        observer: CrawlObserver,
        endpoint: str,
        stop: Callable[[Stop], None],
        stopped: Callable[[], Stop | None],
        notify: Callable[[], None],
    ) -> None:
        self.fetch = fetch
        self.book = book
        self.schedule = schedule
        self.money = money
        self.settings = settings
        self.observer = observer
        self.endpoint = endpoint
        self.stop = stop
        self.stopped = stopped
        self.notify = notify
        self.pacer = Pacer(settings.limits, lambda: schedule.paused_until)
        self.slots = anyio.CapacityLimiter(settings.limits.concurrency)
        self.gate = anyio.Semaphore(max(1, settings.pages_in_memory))
        #: Calls handed out and not yet ended (some still wait for their rate token).
        self.in_flight = 0
        #: Calls sent to the API and not yet answered.
        self.at_api = 0
        self.calls = 0
        self.retries = 0
        self.cost_usd = 0.0
        #: Whether a call was counted since the ledger was last written.
        self.ledger_dirty = False
        self._unsent: set[anyio.CancelScope] = set()

    async def run(
        self, job: JobRecord, send: Send, token: object, reservation: Reservation
    ) -> None:
        """One call's life, from its rate token to its page durable (or its failure told)."""
        holds_memory = False
        reply: Reply | None = None
        page: FetchedPage | None = None
        error: ApiError | None = None
        sent_at: float | None = None
        booked = Settled(0.0, called=False)
        try:
            try:
                sent = await self.pace()
                if not sent or not self.schedule.job(job.key).active:
                    self.schedule.unsent(job.key, send.page)
                    return
                sent_at = anyio.current_time()
                job.sent = True
                if job.first_sent is None:
                    job.first_sent = sent_at
                call = Call(
                    job_id=job.job_id,
                    task={**job.spec.params, "offset": send.offset, "limit": send.limit},
                    offset=send.offset,
                    limit=send.limit,
                )
                self.at_api += 1
                try:
                    reply = await self.fetch(call)
                    # A place in memory before the body is read on and decoded.
                    await self.gate.acquire()
                    holds_memory = True
                    page = await page_of(reply)
                except ApiError as exc:
                    error = exc.at(job_id=job.job_id, offset=send.offset)
                finally:
                    self.at_api -= 1
                    if reply is not None and not isinstance(reply, FetchedPage):
                        # Stopped or abandoned before it was read: its connection closes.
                        reply.discard()
            finally:
                where = f"job {job.job_id}, offset {send.offset}"
                if page is not None:
                    booked = self.money.answered(
                        reservation,
                        page.cost,
                        len(page.lines),
                        where=where,
                        result=page.total_count is not None,
                    )
                    self.count(job, booked)
                elif error is not None:
                    self.count(job, self.money.failed(reservation, error, where=where))
                elif sent_at is not None:
                    # Abandoned with the call out: it may have been billed.
                    self.count(job, self.money.lost(reservation))
                else:
                    self.money.unsent(reservation)
                self.slots.release_on_behalf_of(token)
                self.notify()
            if self.money.halt is not None:
                self.stop(Stop("budget", self.money.halt))
            completes = False
            try:
                if error is not None:
                    await self.failed(job, send, error, sent_at=sent_at)
                elif page is not None:
                    completes = await self.answered(job, send, page, sent_at, booked.cost_usd)
            finally:
                if holds_memory:
                    self.gate.release()
            if completes:
                # The result is whole: move it into place even if the run is being
                # cancelled, so that what is on disk and what the schedule knows agree.
                with anyio.CancelScope(shield=True):
                    await self.book.complete(job)
        finally:
            self.in_flight -= 1
            self.notify()

    def count(self, job: JobRecord, settled: Settled) -> None:
        """A call's outcome in the job's and the run's counters (a call only if it was one)."""
        if settled.called:
            job.calls += 1
            self.calls += 1
            self.ledger_dirty = True
        job.cost_usd += settled.cost_usd
        self.cost_usd += settled.cost_usd

    async def pace(self) -> bool:
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
        stopped = self.stopped()
        return stopped is not None and stopped.hard

    def hold_back(self) -> None:
        """Cancel the calls waiting for their rate token: they are not sent."""
        for scope in self._unsent:
            scope.cancel()

    async def answered(
        self, job: JobRecord, send: Send, page: FetchedPage, sent_at: float | None, cost: float
    ) -> bool:
        """Write an answered page; True when that completes the job."""
        total = page.total_count
        if (
            not page.echoed
            and total is not None
            and send.offset < total
            and only_seen(page.lines, item_key, self.book.writer(job).seen)
        ):
            # No echo to tell which request it answers, and nothing new: a page repeated.
            # Judged before the schedule hears of the answer, which would count it done.
            # The answer was booked as a page already: its error carries its words only.
            repeated = BadAnswerError(
                "bad answer: no echo of the request, and every item is one the job "
                "already holds: a page repeated, not the page asked for"
            )
            await self.failed(job, send, repeated.at(job_id=job.job_id, offset=send.offset))
            return False
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
            error = ApiError(verdict.reason)
            await self.failed(job, send, error, hole=verdict)
            return False
        if verdict == "drop":
            return False
        self.book.check_plan(job, page.total_count)
        try:
            checkpoint = await self.book.writer(job).write(
                PageIn(send.page, page.lines, page.total_count, page.items_repaired),
                job.counters(),
            )
        except OutputError as exc:
            job.record(CallError(kind="output", message=str(exc), offset=send.offset))
            self.book.end(job, "failed", str(exc))
            return False
        job.checkpoint = checkpoint
        job.items_fetched += len(page.lines)
        log.debug(
            "page written",
            extra={"job": job.job_id, "offset": send.offset, "items": len(page.lines)},
        )
        completes = self.schedule.durable(job.key, checkpoint.next_page, (send.page,))
        self.observer.page_done(self.book.snapshot(job), len(page.lines), cost)
        return completes

    async def failed(
        self,
        job: JobRecord,
        send: Send,
        error: ApiError,
        *,
        hole: Hole | None = None,
        sent_at: float | None = None,
    ) -> None:
        # A hole's error is a plain ApiError: transient, retried like a lost answer.
        failure = failure_of(error)
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
            self.observer.call_retried(self.book.snapshot(job), send.offset, error.message, delay)
        elif isinstance(outcome, GaveUp) or (
            isinstance(outcome, JobEnded) and outcome.status == "failed"
        ):
            self.book.end(job, "failed", outcome.reason)
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
            self.stop(stop)
