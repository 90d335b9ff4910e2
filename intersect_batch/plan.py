"""Which jobs run and which pages they need: shared by the crawl, the dry run and ``list``."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from intersect_batch.config import JobEntry
from intersect_batch.errors import UsageError

__all__ = [
    "fingerprint",
    "items_wanted",
    "page_count",
    "page_limit",
    "safety_cap",
    "select_jobs",
]

#: The automatic --max-calls is this many times the calls the jobs' last runs needed...
SAFETY_FACTOR = 3
#: ...counting this many calls for a job with no history and no max_items...
UNKNOWN_JOB_CALLS = 1000
#: ...and never fewer than this.
SAFETY_FLOOR = 1000


def items_wanted(total_count: int, max_items: int | None) -> int:
    """How many items a job will fetch from a query of ``total_count`` results."""
    return total_count if max_items is None else min(total_count, max_items)


def page_count(total_count: int, page_size: int, max_items: int | None) -> int:
    """Calls a job needs: one per page, and at least one to learn the count."""
    wanted = items_wanted(total_count, max_items)
    return max(1, -(-wanted // page_size))


def page_limit(page: int, page_size: int, max_items: int | None) -> int:
    """The ``limit`` of a page's call: the page size, less where max_items ends first."""
    if max_items is None:
        return page_size
    return max(1, min(page_size, max_items - page * page_size))


def fingerprint(params: dict[str, Any], page_size: int, max_items: int | None) -> str:
    """A stable digest of what decides a job's result: its request and its paging.

    Progress made under one fingerprint is never mixed with pages of another.
    """
    canonical = msgspec.json.encode(
        {"params": params, "page_size": page_size, "max_items": max_items}, order="sorted"
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def select_jobs(
    entries: Sequence[JobEntry], ids: Sequence[str] = (), patterns: Sequence[str] = ()
) -> list[JobEntry]:
    """The jobs named by ``--job`` or matching a ``--match`` glob; all when neither is given.

    An id that names no valid job is a UsageError: a typo must not run nothing silently.
    """
    if not ids and not patterns:
        return list(entries)
    known = {entry.job.id for entry in entries}
    unknown = [job_id for job_id in ids if job_id not in known]
    if unknown:
        raise UsageError(f"--job names no valid job: {', '.join(unknown)}")
    chosen = [
        entry
        for entry in entries
        if entry.job.id in ids or any(fnmatch.fnmatchcase(entry.job.id, p) for p in patterns)
    ]
    if not chosen:
        raise UsageError(f"--match {' '.join(patterns)} selects no job")
    return chosen


def safety_cap(expected_calls: Sequence[int | None]) -> int:
    """The automatic cap on one run's calls, from each job's expected calls (None: unknown).

    Three times what the last runs needed, a job with no history counted as a thousand
    calls (a million items at the largest page), and at least a thousand in all: room for
    real growth, while a total_count gone wild stops long before it empties the account.
    """
    calls = sum(UNKNOWN_JOB_CALLS if n is None else n for n in expected_calls)
    return max(SAFETY_FLOOR, SAFETY_FACTOR * calls)
