"""The run's running tally, and the periodic log line built on it (cron's view of a run).

Separate from the bars and the closing table: the tally is arithmetic over the crawler's
snapshots, with no display in it, and both live views (``LogProgress`` here, the bars in
:mod:`intersect_batch.progress`) count on it the same way.

Figures come on two bases, and each place says which. **The night**: what the run
date's files hold, earlier invocations included (a resumed job's figures start where the
last invocation left them: its pages, items and cost all count what is on disk).
**This invocation**: what the command now running did (its pace, its calls).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from intersect_batch.crawl import CrawlObserver, JobFinal, JobSnapshot

__all__ = ["LogProgress", "RunTally"]

log = logging.getLogger("intersect_batch")

#: The window of the live calls-per-minute figure, in seconds.
PACE_WINDOW = 60.0


@dataclass
class _Sums:
    """Figures summed over jobs: kept up to date a snapshot at a time, never re-added."""

    calls: int = 0
    retries: int = 0
    cost: float = 0.0
    pages_done: int = 0
    items: int = 0
    pages_left: int = 0
    invocation_calls: int = 0
    invocation_cost: float = 0.0

    def add(self, other: _Sums, sign: int = 1) -> None:
        self.calls += sign * other.calls
        self.retries += sign * other.retries
        self.cost += sign * other.cost
        self.pages_done += sign * other.pages_done
        self.items += sign * other.items
        self.pages_left += sign * other.pages_left
        self.invocation_calls += sign * other.invocation_calls
        self.invocation_cost += sign * other.invocation_cost


class RunTally(CrawlObserver):
    """Running totals of a run, from the crawler's snapshots of its jobs.

    Night figures (:attr:`calls`, :attr:`cost`, :meth:`pages_done`, :meth:`items_done`)
    cover the jobs this invocation crawls, with what earlier invocations of the date did
    for them; ``pages``, ``items`` and :meth:`calls_per_minute` are this invocation's.
    Each event costs the same however many jobs the night has: the totals move by the
    job's change, and a finished job leaves its figures in them and nothing else.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        #: The jobs not finished yet, as last seen.
        self.jobs: dict[str, JobSnapshot] = {}
        #: Each unfinished job as this invocation found it.
        self.at_start: dict[str, JobSnapshot] = {}
        #: Items each unfinished job received in this invocation.
        self.fetched: dict[str, int] = {}
        self._sums = _Sums()
        self.finished = 0
        #: Pages this invocation made durable, and the items they held.
        self.pages = 0
        self.items = 0
        self.retried = 0
        #: What the run waits for since it was asked to stop (None: it was not).
        self.stopping_message: str | None = None
        self._answers: collections.deque[float] = collections.deque()

    def _share(self, job_id: str) -> _Sums:
        """What one unfinished job adds to the totals."""
        job, start = self.jobs[job_id], self.at_start[job_id]
        planned = job.pages_planned if job.pages_planned is not None else 1
        return _Sums(
            calls=job.calls,
            retries=job.retries,
            cost=job.cost_usd,
            pages_done=job.pages_done,
            items=self.job_items(job_id),
            pages_left=0 if job.status is not None else max(0, planned - job.pages_done),
            invocation_calls=job.calls - start.calls,
            invocation_cost=job.cost_usd - start.cost_usd,
        )

    def _seen(self, job: JobSnapshot, items: int = 0) -> None:
        if job.job_id in self.jobs:
            self._sums.add(self._share(job.job_id), -1)
        self.jobs[job.job_id] = job
        self.at_start.setdefault(job.job_id, job)
        self.fetched[job.job_id] = self.fetched.get(job.job_id, 0) + items
        self._sums.add(self._share(job.job_id))

    def _answered(self) -> None:
        now = self.clock()
        self._answers.append(now)
        while self._answers and self._answers[0] <= now - PACE_WINDOW:
            self._answers.popleft()

    def job_started(self, job: JobSnapshot) -> None:
        self._seen(job)

    def page_done(self, job: JobSnapshot, items: int, cost: float) -> None:
        self._seen(job, items)
        self.pages += 1
        self.items += items
        self._answered()

    def call_retried(self, job: JobSnapshot, offset: int, message: str, delay: float) -> None:
        self._seen(job)
        self.retried += 1
        self._answered()

    def job_finished(self, job: JobSnapshot, final: JobFinal) -> None:
        self._seen(job)
        self.finished += 1
        # Its figures stay in the totals; the job itself is let go.
        del self.jobs[job.job_id], self.at_start[job.job_id], self.fetched[job.job_id]

    def stopping(self, message: str) -> None:
        self.stopping_message = message

    def job_items(self, job_id: str) -> int:
        """Items a job holds: those on disk when this invocation took it up, and since."""
        job = self.jobs[job_id]
        if job.status == "complete":
            return job.items  # de-duplicated, final
        return self.at_start[job_id].items + self.fetched[job_id]

    @property
    def job_count(self) -> int:
        """Jobs seen: the finished ones and those still going or waiting."""
        return self.finished + len(self.jobs)

    @property
    def calls(self) -> int:
        """Calls made for these jobs: this invocation's and earlier ones' of the date."""
        return self._sums.calls

    @property
    def retries(self) -> int:
        """Retried calls, on the same basis as :attr:`calls`."""
        return self._sums.retries

    @property
    def cost(self) -> float:
        """USD the API reported, on the same basis as :attr:`calls`."""
        return max(0.0, self._sums.cost)

    @property
    def invocation_calls(self) -> int:
        """Calls this invocation made."""
        return self._sums.invocation_calls

    @property
    def invocation_cost(self) -> float:
        """USD the API reported for this invocation's calls."""
        return max(0.0, self._sums.invocation_cost)

    def pages_done(self) -> int:
        """Pages these jobs hold on disk, earlier invocations' included."""
        return self._sums.pages_done

    def items_done(self) -> int:
        """Items these jobs hold, on the same basis as :meth:`pages_done`."""
        return self._sums.items

    def pages_left(self) -> int:
        """Pages still to fetch; a job whose count is unknown counts one."""
        return self._sums.pages_left

    def calls_per_minute(self) -> float:
        """This invocation's pace: calls answered in the last minute (or since the start).

        A count over a window of the quota's length, so it never reads above
        ``--rate-per-minute`` for a run that keeps to it.
        """
        now = self.clock()
        while self._answers and self._answers[0] <= now - PACE_WINDOW:
            self._answers.popleft()
        return float(len(self._answers))

    def eta_seconds(self) -> float | None:
        """Seconds to go at this invocation's pace so far; None before its first page."""
        if not self.pages:
            return None
        elapsed = self.clock() - self.started
        return self.pages_left() * elapsed / self.pages


class LogProgress(RunTally):
    """For cron: a ``progress`` log line every ``interval`` seconds, no control characters.

    ``pages``, ``items``, ``calls``, ``retries``, ``cost_usd``: the jobs this invocation
    crawls, with what earlier invocations of the date did for them; ``invocation_*`` and
    ``calls_per_minute``: this invocation alone.
    """

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.interval = interval

    def report(self) -> None:
        """Log one progress line now."""
        eta = self.eta_seconds()
        log.info(
            "progress",
            extra={
                "jobs_done": self.finished,
                "jobs": self.job_count,
                "pages": self.pages_done(),
                "pages_left": self.pages_left(),
                "items": self.items_done(),
                "calls": self.calls,
                "retries": self.retries,
                "cost_usd": round(self.cost, 5),
                "invocation_pages": self.pages,
                "invocation_items": self.items,
                "invocation_calls": self.invocation_calls,
                "invocation_cost_usd": round(self.invocation_cost, 5),
                "calls_per_minute": round(self.calls_per_minute(), 1),
                "eta_s": None if eta is None else round(eta),
            },
        )

    async def watch(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            self.report()
