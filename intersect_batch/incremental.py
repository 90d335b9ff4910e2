"""Whether a job's night is full or incremental, and the requests of an incremental one.

A job with ``refresh: incremental`` rests on its last full night: each cheaper night asks
only for the pages whose backlink to some target was first seen after a cutoff (the last
night's date less ``incremental_overlap_days``), and its items are merged by key onto the
last night's set. :func:`decide` is pure: it is handed the job, the run date and the job's
earlier nights (:class:`NightRecord`, newest first) and says which kind of night it is and
why. The API takes at most 8 filter conditions a request, counted as leaves
``[field, operator, value]`` of the nested filter: the OR of ``N.first_seen > cutoff`` over
the targets is AND-ed with the job's own filters and split over as many requests as that
needs. Each request is crawled as a job of its own, named :func:`request_id`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from intersect_batch.config import Job

__all__ = [
    "MAX_CONDITIONS",
    "REQUEST_MARK",
    "Decision",
    "NightRecord",
    "RefreshNote",
    "count_conditions",
    "cutoff_text",
    "decide",
    "parent_of",
    "request_filters",
    "request_id",
]

#: Conditions the API allows in one request's filters.
MAX_CONDITIONS = 8
#: Between a job's id and a request's number. Ids never hold a '+' ([a-z0-9._-]), so no
#: config can name a job the way a request is named.
REQUEST_MARK = "+new-"
_JOINERS = ("and", "or")

Mode = Literal["full", "incremental"]


class RefreshNote(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A ``refresh: incremental`` job's night, in its manifest and run.json (``refresh``)."""

    #: ``full``: every page was fetched; ``incremental``: only pages new since ``cutoff``.
    mode: Mode
    #: Why the night is of that kind, in a few words.
    why: str
    #: Incremental: the full night the set rests on, and the night whose items were carried.
    rests_on: str | None = None
    carried_from: str | None = None
    #: Incremental: the ``first_seen`` the requests asked to be later than, and how many.
    cutoff: str | None = None
    requests: int = 0
    #: Incremental: items of the last night kept, and items fetched tonight (before merging).
    items_carried: int | None = None
    items_fetched: int | None = None
    #: Incremental: lost pages are not known; when the next full night is due.
    lost: str | None = None
    next_full: str | None = None
    #: Full, after incremental nights: pages this crawl found that they did not have,
    #: although no backlink of theirs was first seen after the last one's cutoff.
    missed_by_incremental: int | None = None
    missed_since: str | None = None


@dataclass(frozen=True)
class NightRecord:
    """One earlier night of a job, as its manifest tells it."""

    date: dt.date
    status: str
    fingerprint: str
    mode: Mode
    #: The full night an incremental night rested on (None for a full night).
    rests_on: dt.date | None = None
    cutoff: str | None = None


@dataclass(frozen=True)
class Decision:
    """A night's kind, why, and for an incremental night what to ask."""

    mode: Mode
    why: str
    next_full: dt.date
    #: Incremental: the night whose set is carried, the full night under it, the cutoff.
    carried_from: dt.date | None = None
    rests_on: dt.date | None = None
    cutoff: str | None = None
    #: Incremental: the ``filters`` of each request, in order.
    requests: tuple[list[Any], ...] = ()


def request_id(job_id: str, number: int) -> str:
    """The id of an incremental night's request ``number`` (1-based) of a job."""
    return f"{job_id}{REQUEST_MARK}{number}"


def parent_of(job_id: str) -> str | None:
    """The job an incremental request id belongs to, or None for a job's own id."""
    parent, mark, number = job_id.rpartition(REQUEST_MARK)
    return parent if mark and parent and number.isdigit() else None


def count_conditions(node: Any) -> int:
    """The ``[field, operator, value]`` conditions of a (nested) filter, as the API counts."""
    if not isinstance(node, list) or not node:
        return 0
    if isinstance(node[0], str) and node[0] not in _JOINERS:
        return 1
    return sum(count_conditions(part) for part in node)


def cutoff_text(night: dt.date, overlap_days: int) -> str:
    """The ``first_seen`` an incremental night asks to be later than, as the API writes dates."""
    day = night - dt.timedelta(days=overlap_days)
    return f"{day.isoformat()} 00:00:00 +00:00"


def request_filters(
    numbers: Sequence[str], cutoff: str, own: list[Any] | None, room: int
) -> tuple[list[Any], ...]:
    """Each request's filters: ``room`` targets' ``first_seen > cutoff`` OR-ed, AND the job's."""
    requests: list[list[Any]] = []
    for start in range(0, len(numbers), room):
        chunk = numbers[start : start + room]
        conditions: list[Any] = [[f"{number}.first_seen", ">", cutoff] for number in chunk]
        new: list[Any] = conditions[0]
        if len(conditions) > 1:
            new = [conditions[0]]
            for condition in conditions[1:]:
                new += ["or", condition]
        requests.append([new, "and", own] if own else new)
    return tuple(requests)


def decide(
    job: Job,
    run_date: dt.date,
    history: Sequence[NightRecord],
    fingerprint: str,
    *,
    force_full: bool = False,
) -> Decision:
    """Whether tonight is full or incremental for ``job``, and why; pure.

    ``history``: the job's earlier nights, newest first; ``fingerprint``: tonight's
    request and paging. Full on the first night, every ``full_every_days`` since the
    last full night, after the query changed, with ``--full``, when the last night is not
    complete, and when incremental cannot apply (``max_items``, or filters that leave no
    room for a ``first_seen`` condition).
    """

    def full(why: str) -> Decision:
        return Decision("full", why, run_date + dt.timedelta(days=job.full_every_days))

    if job.refresh == "full":
        return full("refresh: full")
    if force_full:
        return full("--full")
    own = count_conditions(job.filters)
    room = MAX_CONDITIONS - own
    if room < 1:
        return full(
            f"incremental cannot apply: its filters hold {own} of the {MAX_CONDITIONS} "
            "conditions a request may have, leaving none for 'first_seen'"
        )
    if job.max_items is not None:
        return full("incremental cannot apply: max_items caps the set, new pages cannot join it")
    if not history:
        return full("first night")
    last = history[0]
    if last.status != "complete":
        return full(f"the last night, {last.date}, is not complete")
    if last.fingerprint != fingerprint:
        return full(f"the query changed since {last.date}")
    rests_on = last.date if last.mode == "full" else last.rests_on
    if rests_on is None:
        return full(f"the night of {last.date} rests on no full night")
    next_full = rests_on + dt.timedelta(days=job.full_every_days)
    if run_date >= next_full:
        days = (run_date - rests_on).days
        return full(f"last full night {rests_on}, {days} days ago")
    cutoff = cutoff_text(last.date, job.incremental_overlap_days)
    return Decision(
        "incremental",
        f"new since {cutoff}",
        next_full,
        carried_from=last.date,
        rests_on=rests_on,
        cutoff=cutoff,
        requests=request_filters(list(job.targets), cutoff, job.filters, room),
    )
