"""``intersect-batch list``: a config folder's jobs, with the pages their last run needed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from intersect_batch.config import LoadResult, load_jobs
from intersect_batch.manifest import previous_total
from intersect_batch.plan import fingerprint, page_count, select_jobs

__all__ = ["JobListing", "Listing", "list_jobs"]


class JobListing(msgspec.Struct, kw_only=True):
    """One job as ``intersect-batch list`` shows it."""

    id: str
    file: str
    targets: list[str]
    exclude_targets: list[str]
    page_size: int
    max_items: int | None
    #: The total_count the newest run of the same request saw, if any.
    last_total_count: int | None
    estimated_pages: int | None


@dataclass(frozen=True)
class Listing:
    """The jobs, and what was wrong with the folder."""

    jobs: list[JobListing]
    loaded: LoadResult


def list_jobs(
    config_dir: Path,
    out_dir: Path,
    *,
    ids: Sequence[str] = (),
    patterns: Sequence[str] = (),
    today: dt.date | None = None,
) -> Listing:
    """The selected jobs of ``config_dir``, each with the pages its newest run needed.

    Raises UsageError when ``ids`` names no valid job.
    """
    loaded = load_jobs(config_dir)
    today = today or dt.datetime.now(dt.UTC).date()
    rows = []
    for entry in select_jobs(loaded.jobs, ids, patterns) if loaded.jobs else []:
        job = entry.job
        print_ = fingerprint(job.api_params(), job.page_size, job.max_items)
        total = previous_total(out_dir, today + dt.timedelta(days=1), job.id, print_)
        rows.append(
            JobListing(
                id=job.id,
                file=f"{entry.file}:{entry.line}" if entry.line else str(entry.file),
                targets=list(job.targets.values()),
                exclude_targets=job.exclude_targets or [],
                page_size=job.page_size,
                max_items=job.max_items,
                last_total_count=total,
                estimated_pages=(
                    None if total is None else page_count(total, job.page_size, job.max_items)
                ),
            )
        )
    return Listing(jobs=rows, loaded=loaded)
