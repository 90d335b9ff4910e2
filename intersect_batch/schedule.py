"""What to send next: every job's pages, as a pure object told the time and the events.

The :class:`Schedule` knows each job's plan (its total_count, the pages that needs),
which pages are in flight, answered, durable or due for a retry, and the run's state
(halted, paused by the API). It does no I/O and reads no clock: the crawler tells it
``now`` and what happened, and asks :meth:`Schedule.next` for the next
:class:`Send`, or learns to :class:`Wait` or that it is :class:`Done`.

The rules, each decided here and nowhere else:

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
from dataclasses import dataclass, field
from typing import Literal

from intersect_batch.plan import page_count, page_limit
from intersect_batch.settings import RetryPolicy

__all__ = [
    "Done",
    "Failure",
    "GaveUp",
    "Hole",
    "JobEnded",
    "JobState",
    "Retry",
    "RunStopped",
    "Schedule",
    "Send",
    "Verdict",
    "Wait",
]

EndStatus = Literal["complete", "failed", "partial"]
#: How many holes a failed job's reason names; the manifest lists them all.
HOLES_NAMED = 3


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


@dataclass(frozen=True, slots=True)
class Hole:
    """A page inside the total that came back empty or short."""

    offset: int
    reason: str
    attempts: int


#: What to do with an answered page: write it, drop it, or retry it as a hole.
Verdict = Literal["write", "drop"] | Hole


@dataclass(eq=False, slots=True)
class JobState:
    """One job as the schedule sees it (the schedule's own; read, never written, outside)."""

    key: int
    page_size: int
    max_items: int | None
    status: EndStatus | None = None
    reason: str | None = None
    total: int | None = None
    planned: int | None = None
    #: The writer's position: pages ``0..written-1`` are durable in order.
    written: int = 0
    #: Pages durable (in order or in the spool); never sent again.
    durable: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    #: Answered and handed to the writer, not yet durable.
    answered: set[int] = field(default_factory=set)
    #: Pages waiting for a retry (in the retry heap).
    waiting: set[int] = field(default_factory=set)
    #: Hole pages waiting for a lower hole of the job to be resolved first.
    parked: set[int] = field(default_factory=set)
    cursor: int = 0
    #: The highest page ever handed out or found durable: the plan never drops below it.
    high: int = -1
    attempts: dict[int, int] = field(default_factory=dict)
    holes: dict[int, Hole] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Neither ended nor stopped."""
        return self.status is None

    def taken(self, page: int) -> bool:
        """Whether the page is durable, on its way or waiting for its retry."""
        return (
            page in self.durable
            or page in self.in_flight
            or page in self.answered
            or page in self.waiting
            or page in self.parked
        )


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
        self.rng = rng or random.Random()
        self.jobs: list[JobState] = []
        #: Whether the run hands out nothing more. Why it stopped is the crawl's (its Stop).
        self.halted = False
        #: Seconds the run spent paused by the API's rate or concurrency refusals.
        self.throttled_seconds = 0.0
        self._probes: deque[JobState] = deque()
        self._retries: list[tuple[float, int, int]] = []
        self._running: list[JobState] = []
        self._pause_until = 0.0
        self._throttle_streak = 0
        self._throttled_at = -math.inf
        self._unreachable_since: float | None = None

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
            self._replan(job, total)
            self._running.append(job)
        return job.key

    def job(self, key: int) -> JobState:
        """A job's state."""
        return self.jobs[key]

    def finished(self, key: int) -> bool:
        """True when every planned page of the job is durable in order."""
        job = self.jobs[key]
        return job.planned is not None and job.written >= job.planned

    def end_job(self, key: int, status: EndStatus, reason: str | None) -> None:
        """End a job from outside the schedule (its output failed, it was found complete).

        A job that already ended keeps its status, except that a complete job whose
        result could not be moved into place becomes failed.
        """
        job = self.jobs[key]
        if job.status is None or (job.status == "complete" and status == "failed"):
            job.status = status
            job.reason = reason

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
            new = self._next_new_page(job)
            if new is not None:
                return self._send(job, new)
        if self._retries:
            return Wait(self._retries[0][0])
        if any(job.in_flight or job.answered for job in self.jobs if job.active):
            return Wait(None)
        return Done()

    def _next_new_page(self, job: JobState) -> int | None:
        if job.planned is None or job.holes:
            return None
        end = min(job.planned, job.written + self.pages_ahead)
        page = job.cursor
        while page < end and job.taken(page):
            page += 1
        job.cursor = page
        return page if page < end else None

    def _send(self, job: JobState, page: int) -> Send:
        job.in_flight.add(page)
        job.high = max(job.high, page)
        limit = page_limit(page, job.page_size, job.max_items)
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
        self._unreachable_since = None
        if sent_at is None or sent_at >= self._throttled_at:
            # A call sent since the last refusal went through: the streak is over.
            self._throttle_streak = 0
        hole = self._hole(job, page, total=total, items=items, limit=limit)
        if hole is not None:
            return hole if job.active else "drop"
        if job.status == "complete":
            return "drop"
        self._resolve_hole(job, page)
        job.attempts.pop(page, None)
        job.answered.add(page)
        if job.active:
            known = job.total if job.total is not None else 0
            self._replan(job, total if total is not None else known)
            if job not in self._running:
                # Jobs fan out in the order of their configs, whichever probe came back
                # first: the same folder is crawled in the same order every night.
                bisect.insort(self._running, job, key=lambda running: running.key)
        return "write"

    def _resolve_hole(self, job: JobState, page: int) -> None:
        if job.holes.pop(page, None) is None:
            return
        # The next hole waiting behind this one goes out now.
        if job.parked:
            lowest = min(job.parked)
            job.parked.discard(lowest)
            self._retry_at(job, lowest, -math.inf)

    def _hole(
        self, job: JobState, page: int, *, total: int | None, items: int, limit: int
    ) -> Hole | None:
        offset = page * job.page_size
        if total is None:
            # No result at all (40102, result null): a hole if the known total says
            # there is something at this offset.
            known = job.total
            if offset == 0 or known is None or offset >= known:
                return None
            why = f"no result inside total_count {known}"
        elif items == 0 and offset < total:
            why = f"an empty page inside total_count {total}"
        elif items < min(limit, total - offset):
            expected = min(limit, total - offset)
            why = f"{items} of {expected} items although total_count is {total}"
        else:
            return None
        attempts = job.attempts.get(page, 0) + 1
        return Hole(offset=offset, reason=why, attempts=attempts)

    def durable(self, key: int, written: int, pages: Iterable[int]) -> bool:
        """The writer made ``pages`` durable and stands at ``written``.

        True exactly once per job: when this makes it complete (every planned page
        appended in order). The job is then ``complete`` and sends nothing more.
        """
        job = self.jobs[key]
        for page in pages:
            job.answered.discard(page)
            job.durable.add(page)
        job.written = max(job.written, written)
        if job.active and self.finished(key):
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
            self.end_job(key, "failed", message)
            return JobEnded("failed", message)
        policy = self.retry
        if failure is Failure.THROTTLED:
            self._unreachable_since = None
            if sent_at is not None and sent_at < self._throttled_at:
                self._retry_at(job, page, self._pause_until)
                return Retry(at=self._pause_until, attempt=job.attempts.get(page, 0))
            return self._throttled(job, page, now, retry_after)
        if failure is Failure.UNREACHABLE:
            return self._unreachable(job, page, now, message)
        self._unreachable_since = None
        attempts = job.attempts.get(page, 0) + 1
        job.attempts[page] = attempts
        if hole is not None:
            job.holes[page] = Hole(hole.offset, hole.reason, attempts)
        if attempts >= policy.attempts:
            if hole is not None:
                reason = f"{self._describe_holes(job)}, after {attempts} attempts"
            else:
                reason = f"gave up after {attempts} attempts: {message}"
            self.end_job(key, "failed", reason)
            return GaveUp(reason)
        if retry_after is not None:
            delay = min(max(0.0, retry_after), policy.cap)
        else:
            delay = self.rng.uniform(0, min(policy.cap, policy.base * 2 ** (attempts - 1)))
        if hole is not None and page > min(job.holes):
            # Only the lowest hole is asked again; this one waits for it.
            job.parked.add(page)
            return Retry(at=math.inf, attempt=attempts)
        self._retry_at(job, page, now + delay)
        return Retry(at=now + delay, attempt=attempts)

    def _throttled(
        self, job: JobState, page: int, now: float, retry_after: float | None
    ) -> Retry | RunStopped:
        policy = self.retry
        self._throttle_streak += 1
        self._throttled_at = now
        if retry_after is not None:
            pause = min(max(0.0, retry_after), policy.cap)
        else:
            growth = policy.slowdown * 2 ** (self._throttle_streak - 1)
            pause = min(max(policy.cap, policy.slowdown), growth)
        until = now + pause
        # Count each second of pause once, however many refusals overlap.
        self.throttled_seconds += max(0.0, until - max(now, self._pause_until))
        self._pause_until = max(self._pause_until, until)
        self._retry_at(job, page, self._pause_until)
        if self.throttled_seconds >= policy.patience:
            return self._stopped(
                "throttled",
                f"the API refused calls for rate or concurrency for "
                f"{self.throttled_seconds:.0f} s in all (patience {policy.patience:.0f} s)",
            )
        return Retry(at=self._pause_until, attempt=job.attempts.get(page, 0), paused_until=until)

    def _unreachable(
        self, job: JobState, page: int, now: float, message: str
    ) -> Retry | RunStopped:
        policy = self.retry
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= policy.unreachable_after:
            return self._stopped("unreachable", message)
        waited = now - self._unreachable_since
        delay = min(policy.cap, max(policy.base, waited))
        delay = self.rng.uniform(delay / 2, delay)
        self._retry_at(job, page, now + delay)
        return Retry(at=now + delay, attempt=job.attempts.get(page, 0))

    @property
    def paused_until(self) -> float:
        """The loop time until which the API asked the run to hold its calls."""
        return self._pause_until

    def _retry_at(self, job: JobState, page: int, due: float) -> None:
        job.waiting.add(page)
        heapq.heappush(self._retries, (due, job.key, page))

    # -- plans ----------------------------------------------------------------------------

    def _replan(self, job: JobState, total: int) -> None:
        """Plan for the latest total_count: grow with it, keep what was already handed out."""
        job.total = total
        wanted = page_count(total, job.page_size, job.max_items)
        job.planned = max(wanted, job.high + 1, job.written)

    @staticmethod
    def _describe_holes(job: JobState) -> str:
        holes = [hole for _, hole in sorted(job.holes.items())]
        parts = [f"offset {hole.offset}: {hole.reason}" for hole in holes[:HOLES_NAMED]]
        if len(holes) > HOLES_NAMED:
            parts.append(f"and {len(holes) - HOLES_NAMED} more (the manifest lists them)")
        return "; ".join(parts)

    def holes(self, key: int) -> list[Hole]:
        """The suspect pages a job still has, by offset."""
        return [hole for _, hole in sorted(self.jobs[key].holes.items())]

    def end_active(self, reason: str) -> None:
        """Mark every job still going as partial (the run stopped before they finished)."""
        for job in self.jobs:
            if job.status is None:
                job.status = "partial"
                job.reason = reason
