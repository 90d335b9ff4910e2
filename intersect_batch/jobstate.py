"""One job's pages as the schedule sees them: its plan, what each page has become, its holes.

:class:`JobState` is the schedule's record of a job: the total_count it last heard and
the pages that needs, which pages are in flight, answered, durable, waiting for a retry
or parked behind a lower hole, how many attempts each has spent, and how the job ended.
What it decides is the job's alone: how many pages the plan holds, which new page is next
within the pages-ahead window, whether an answer is a :class:`Hole`, and how a failed
job's holes are named. It is apart from :mod:`intersect_batch.schedule`, which decides
between jobs and over time; like it, it does no I/O and reads no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from intersect_batch.plan import page_count, page_limit

__all__ = ["HOLES_NAMED", "EndStatus", "Hole", "JobState"]

EndStatus = Literal["complete", "failed", "partial"]
#: How many holes a failed job's reason names; the manifest lists them all.
HOLES_NAMED = 3


@dataclass(frozen=True, slots=True)
class Hole:
    """A page inside the total that came back empty or short."""

    offset: int
    reason: str
    attempts: int


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

    @property
    def finished(self) -> bool:
        """True when every planned page is durable in order."""
        return self.planned is not None and self.written >= self.planned

    def taken(self, page: int) -> bool:
        """Whether the page is durable, on its way or waiting for its retry."""
        return (
            page in self.durable
            or page in self.in_flight
            or page in self.answered
            or page in self.waiting
            or page in self.parked
        )

    def end(self, status: EndStatus, reason: str | None) -> None:
        """End the job; one that already ended keeps its status, but complete may fail."""
        if self.status is None or (self.status == "complete" and status == "failed"):
            self.status = status
            self.reason = reason

    def replan(self, total: int) -> None:
        """Plan for the latest total_count: grow with it, keep what was already handed out."""
        self.total = total
        wanted = page_count(total, self.page_size, self.max_items)
        self.planned = max(wanted, self.high + 1, self.written)

    def next_new_page(self, pages_ahead: int) -> int | None:
        """The lowest page never sent within ``pages_ahead`` of the writer, if any."""
        if self.planned is None or self.holes:
            return None
        end = min(self.planned, self.written + pages_ahead)
        page = self.cursor
        while page < end and self.taken(page):
            page += 1
        self.cursor = page
        return page if page < end else None

    def send(self, page: int) -> int:
        """The page goes out: it is in flight; the ``limit`` of its call."""
        self.in_flight.add(page)
        self.high = max(self.high, page)
        return page_limit(page, self.page_size, self.max_items)

    def answer(self, page: int) -> int | None:
        """The page was answered in full, to be written; the parked hole to retry now, if any.

        It is no longer a hole, and its attempts are forgotten; the lowest hole waiting
        behind it is no longer parked and is returned, to go out first.
        """
        unparked = None
        if self.holes.pop(page, None) is not None and self.parked:
            unparked = min(self.parked)
            self.parked.discard(unparked)
        self.attempts.pop(page, None)
        self.answered.add(page)
        return unparked

    def made_durable(self, written: int, pages: Iterable[int]) -> None:
        """The writer made ``pages`` durable and stands at ``written``."""
        for page in pages:
            self.answered.discard(page)
            self.durable.add(page)
        self.written = max(self.written, written)

    def hole(self, page: int, *, total: int | None, items: int, limit: int) -> Hole | None:
        """The answer as a :class:`Hole` when it holds fewer items than its total says."""
        offset = page * self.page_size
        if total is None:
            # No result at all (40102, result null): a hole if the known total says
            # there is something at this offset.
            known = self.total
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
        attempts = self.attempts.get(page, 0) + 1
        return Hole(offset=offset, reason=why, attempts=attempts)

    def attempted(self, page: int, hole: Hole | None) -> int:
        """One more attempt of the page failed (a hole when ``hole``); how many it made."""
        attempts = self.attempts.get(page, 0) + 1
        self.attempts[page] = attempts
        if hole is not None:
            self.holes[page] = Hole(hole.offset, hole.reason, attempts)
        return attempts

    def give_up(self, attempts: int, message: str, *, hole: bool) -> str:
        """The page used up its ``attempts``: the job fails; why, naming its holes if ``hole``."""
        if hole:
            reason = f"{self.describe_holes()}, after {attempts} attempts"
        else:
            reason = f"gave up after {attempts} attempts: {message}"
        self.end("failed", reason)
        return reason

    def sorted_holes(self) -> list[Hole]:
        """The suspect pages the job still has, by offset."""
        return [hole for _, hole in sorted(self.holes.items())]

    def describe_holes(self) -> str:
        """The first :data:`HOLES_NAMED` holes, each with why, for the job's reason."""
        holes = self.sorted_holes()
        parts = [f"offset {hole.offset}: {hole.reason}" for hole in holes[:HOLES_NAMED]]
        if len(holes) > HOLES_NAMED:
            parts.append(f"and {len(holes) - HOLES_NAMED} more (the manifest lists them)")
        return "; ".join(parts)
