"""What to send next: every job's pages, as a pure object told the time and the events.

The :class:`Schedule` knows each job's plan (its total_count, the pages that needs),
which pages are in flight, answered, durable or due for a retry, and the run's state
(halted, paused by the API). It does no I/O and reads no clock: the crawler tells it
``now`` and what happened, and asks :meth:`Schedule.next` for the next
:class:`Send`, or learns to :class:`Wait` or that it is :class:`Done`.

The rules, each decided here or in one of the two rooms the schedule holds: each job's
:class:`~intersect_batch.jobstate.JobState` (its plan, its pages, its holes) and the run's
:class:`~intersect_batch.backoff.Backoff` (how long a failure waits, and when waiting is
over):

- **Probes first.** A job whose total_count is unknown sends its page 0 before any other
  job's later pages; its other pages wait for that answer.
- **Retries when due**, before new pages; the back-off is exponential with full jitter,
  or the server's Retry-After, capped.
- **The pages-ahead window.** A job's page is sent only within ``pages_ahead`` of the
  writer's position, so the pages waiting to be appended in order stay bounded.
- **Holes.** A page inside the total that comes back empty or short is retried like a
  transient failure; while a job has such a page, only its lowest one is sent again and
  no new page of that job goes out. If it stays so, the job fails, naming the offsets.
- **Give up after N attempts**: the job fails with the last error.
- **Throttling is the run's, not the page's.** A rate or concurrency refusal pauses every
  call (growing while refusals follow each other) and costs the page no attempt; a run
  throttled longer than its patience stops.
- **Unreachable.** Connection failures cost no attempt either; a run whose calls reach
  nothing for ``unreachable_after`` seconds stops.
- **Completion is decided once**: when the writer's position reaches the plan.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from intersect_batch.backoff import Backoff
from intersect_batch.jobstate import EndStatus, Hole, JobState
from intersect_batch.settings import RetryPolicy

__all__ = [
    "Done",
    "Failure",
    "GaveUp",
    "JobEnded",
    "Retry",
    "RunStopped",
    "Schedule",
    "Send",
    "Verdict",
    "Wait",
]


class Failure(enum.Enum):
    """What a failed call means for the schedule."""

    #: Worth retrying: counts one attempt of the page.
    TRANSIENT = "transient"
    #: The account's rate or concurrency limit: the run pauses; no attempt is spent.
    THROTTLED = "throttled"
    #: The API could not be reached at all: no attempt is spent; the run's streak grows.
    UNREACHABLE = "unreachable"
    #: The API rejected this job's request: the job fails.
    JOB_FATAL = "job_fatal"
    #: The account cannot go on: the run stops.
    RUN_FATAL = "run_fatal"


@dataclass(frozen=True, slots=True)
class Send:
    """Send one page of a job: ``offset`` and ``limit`` are the call's."""

    job: int
    page: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing can be sent now; ask again at ``until`` (loop clock), or after an event."""

    until: float | None


@dataclass(frozen=True, slots=True)
class Done:
    """Nothing is left to send or to wait for."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The page goes out again at ``at`` (loop clock); ``attempt`` calls have been made."""

    at: float
    attempt: int
    paused_until: float | None = None


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The page used up its attempts; the job has failed."""

    reason: str


@dataclass(frozen=True, slots=True)
class JobEnded:
    """The failure ended the job (``failed``), or the job had already ended."""

    status: EndStatus
    reason: str | None


@dataclass(frozen=True, slots=True)
class RunStopped:
    """The failure stopped the run: no more calls are sent."""

    kind: Literal["run_fatal", "throttled", "unreachable"]
    reason: str


#: What to do with an answered page: write it, drop it, or retry it as a hole.
Verdict = Literal["write", "drop"] | Hole


class Schedule:
    """The run's plan: which (job, page) to send next, and what each outcome means."""

    def __init__(
        self,
        *,
        retry: RetryPolicy,
        pages_ahead: int,
        rng: random.Random | None = None,
    ) -> None:
        self.retry = retry
        self.pages_ahead = max(1, pages_ahead)
        self.jobs: list[JobState] = []
        #: Whether the run hands out nothing more. Why it stopped is the crawl's (its Stop).
        self.halted = False
        self._backoff = Backoff(retry, rng or random.Random())
        self._probes: deque[JobState] = deque()
        self._retries: list[tuple[float, int, int]] = []
        self._running: list[JobState] = []

    @property
    def throttled_seconds(self) -> float:
        """Seconds the run spent paused by the API's rate or concurrency refusals."""
        return self._backoff.throttled_seconds

    @property
    def paused_until(self) -> float:
        """The loop time until which the API asked the run to hold its calls."""
        return self._backoff.paused_until

    # -- jobs -----------------------------------------------------------------------------

    def add_job(
        self,
        page_size: int,
        max_items: int | None,
        *,
        total: int | None = None,
        durable: Iterable[int] = (),
        written: int = 0,
    ) -> int:
        """Plan a job; ``total``, ``durable`` and ``written`` resume an earlier run's."""
        job = JobState(key=len(self.jobs), page_size=page_size, max_items=max_items)
        job.durable = set(durable)
        job.written = written
        job.high = max(job.durable, default=written - 1)
        self.jobs.append(job)
        if total is None:
            self._probes.append(job)
        else:
            job.replan(total)
            self._running.append(job)
        return job.key

    def job(self, key: int) -> JobState:
        """A job's state."""
        return self.jobs[key]

    def finished(self, key: int) -> bool:
        """True when every planned page of the job is durable in order."""
        return self.jobs[key].finished

    def end_job(self, key: int, status: EndStatus, reason: str | None) -> None:
        """End a job from outside the schedule (its output failed, it was found complete).

        A job that already ended keeps its status, except that a complete job whose
        result could not be moved into place becomes failed.
        """
        self.jobs[key].end(status, reason)

    def holes(self, key: int) -> list[Hole]:
        """The suspect pages a job still has, by offset."""
        return self.jobs[key].sorted_holes()

    def end_active(self, reason: str) -> None:
        """Mark every job still going as partial (the run stopped before they finished)."""
        for job in self.jobs:
            job.end("partial", reason)

    # -- what to send ---------------------------------------------------------------------

    def next(self, now: float) -> Send | Wait | Done:
        """The next page to send, or how long nothing can be sent."""
        if self.halted:
            return Done()
        while self._probes:
            job = self._probes.popleft()
            if job.active and job.planned is None and not job.taken(0):
                return self._send(job, 0)
        while self._retries and self._retries[0][0] <= now:
            _, key, page = heapq.heappop(self._retries)
            job = self.jobs[key]
            job.waiting.discard(page)
            if page in job.holes and page > min(job.holes):
                # A lower hole appeared since this retry was planned: it goes first.
                job.parked.add(page)
                continue
            if job.active and not job.taken(page):
                return self._send(job, page)
        self._running = [job for job in self._running if job.active]
        for job in self._running:
            new = job.next_new_page(self.pages_ahead)
            if new is not None:
                return self._send(job, new)
        if self._retries:
            return Wait(self._retries[0][0])
        if any(job.in_flight or job.answered for job in self.jobs if job.active):
            return Wait(None)
        return Done()

    def _send(self, job: JobState, page: int) -> Send:
        limit = job.send(page)
        return Send(job=job.key, page=page, offset=page * job.page_size, limit=limit)

    def unsent(self, key: int, page: int) -> None:
        """A page handed out was not sent (stopped, no budget): it is the next again."""
        job = self.jobs[key]
        job.in_flight.discard(page)
        if not job.active:
            return
        if page == 0 and job.planned is None:
            self._probes.appendleft(job)
        else:
            self._retry_at(job, page, -math.inf)

    def _retry_at(self, job: JobState, page: int, due: float) -> None:
        job.waiting.add(page)
        heapq.heappush(self._retries, (due, job.key, page))

    def halt(self) -> None:
        """Hand out nothing more (the run stopped: a signal, the budget, a cap, a verdict)."""
        self.halted = True

    def _stopped(
        self, kind: Literal["run_fatal", "throttled", "unreachable"], reason: str
    ) -> RunStopped:
        """The verdict that stops the run: nothing more is handed out."""
        self.halted = True
        return RunStopped(kind, reason)

    # -- what happened --------------------------------------------------------------------

    def answered(
        self,
        key: int,
        page: int,
        now: float,
        *,
        total: int | None,
        items: int,
        limit: int,
        sent_at: float | None = None,
    ) -> Verdict:
        """A page came back: write it, drop it, or treat it as a :class:`Hole`.

        ``total`` is the answer's total_count (None when it carried no result, as 40102
        does); ``sent_at`` is when the call went out (an answer to a call sent before the
        last refusal does not end a streak of refusals). A hole is never written: report
        it with :meth:`failed` (``hole=...``) next.
        A page of a job that is already complete is dropped; a failed or stopped job's
        pages are still written, so that the next run does not pay for them again.
        """
        job = self.jobs[key]
        job.in_flight.discard(page)
        self._backoff.went_through(sent_at)
        hole = job.hole(page, total=total, items=items, limit=limit)
        if hole is not None:
            return hole if job.active else "drop"
        if job.status == "complete":
            return "drop"
        unparked = job.answer(page)
        if unparked is not None:
            self._retry_at(job, unparked, -math.inf)
        if job.active:
            known = job.total if job.total is not None else 0
            job.replan(total if total is not None else known)
            if job not in self._running:
                # Jobs fan out in the order of their configs, whichever probe came back
                # first: the same folder is crawled in the same order every night.
                bisect.insort(self._running, job, key=lambda running: running.key)
        return "write"

    def durable(self, key: int, written: int, pages: Iterable[int]) -> bool:
        """The writer made ``pages`` durable and stands at ``written``.

        True exactly once per job: when this makes it complete (every planned page
        appended in order). The job is then ``complete`` and sends nothing more.
        """
        job = self.jobs[key]
        job.made_durable(written, pages)
        if job.active and job.finished:
            job.status = "complete"
            return True
        return False

    def failed(
        self,
        key: int,
        page: int,
        now: float,
        failure: Failure,
        *,
        message: str,
        retry_after: float | None = None,
        hole: Hole | None = None,
        sent_at: float | None = None,
    ) -> Retry | GaveUp | JobEnded | RunStopped:
        """A call for the page failed (or its answer was a hole); what happens now.

        ``sent_at``: when the call went out. A refusal of a call sent before the last
        refusal is one of the same wave: it does not lengthen the pause.
        """
        job = self.jobs[key]
        job.in_flight.discard(page)
        if failure is Failure.RUN_FATAL:
            return self._stopped("run_fatal", message)
        if job.status is not None:
            return JobEnded(job.status, job.reason)
        if failure is Failure.JOB_FATAL:
            job.end("failed", message)
            return JobEnded("failed", message)
        if failure is Failure.THROTTLED:
            until = self._backoff.throttled(now, retry_after, sent_at)
            self._retry_at(job, page, self.paused_until)
            attempt = job.attempts.get(page, 0)
            if until is None:
                # One of the same wave: the pause and the time paused stand as they were.
                return Retry(at=self.paused_until, attempt=attempt)
            reason = self._backoff.out_of_patience()
            if reason is not None:
                return self._stopped("throttled", reason)
            return Retry(at=self.paused_until, attempt=attempt, paused_until=until)
        if failure is Failure.UNREACHABLE:
            delay = self._backoff.unreachable(now)
            if delay is None:
                return self._stopped("unreachable", message)
            self._retry_at(job, page, now + delay)
            return Retry(at=now + delay, attempt=job.attempts.get(page, 0))
        self._backoff.reached()
        attempts = job.attempted(page, hole)
        if attempts >= self.retry.attempts:
            return GaveUp(job.give_up(attempts, message, hole=hole is not None))
        delay = self._backoff.retry_delay(attempts, retry_after)
        if hole is not None and page > min(job.holes):
            # Only the lowest hole is asked again; this one waits for it.
            job.parked.add(page)
            return Retry(at=math.inf, attempt=attempts)
        self._retry_at(job, page, now + delay)
        return Retry(at=now + delay, attempt=attempts)
