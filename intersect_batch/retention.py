"""``--keep-days``: remove old run-date folders, only the ones this tool made."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

from intersect_batch.durable import atomic_write
from intersect_batch.errors import OutputError
from intersect_batch.layout import RunFolder, earlier_runs

__all__ = ["mark_run_dir", "prune_runs"]

log = logging.getLogger("intersect_batch")

_MARKER_TEXT = b"made by intersect-batch; --keep-days may remove this folder\n"


def mark_run_dir(folder: RunFolder) -> None:
    """Create the run-date folder (if needed) and mark it as this tool's.

    Raises OutputError, before any call, when the run folder is a symlink (it may be
    shared with another output folder, whose lock would not protect it) or when its
    state folder is: the run would read, truncate and remove files in the folder it
    points to as if they were its own progress.
    """
    path = folder.path
    if path.is_symlink():
        raise OutputError(f"the run folder is a symlink; use a real folder ({path})")
    if folder.state.is_symlink():
        raise OutputError(
            f"the run folder's state folder is a symlink; remove it ({folder.state}), "
            "the run will start its unfinished jobs over"
        )
    path.mkdir(parents=True, exist_ok=True)
    if not folder.marker.is_file():
        atomic_write(folder.marker, _MARKER_TEXT)


def prune_runs(folder: RunFolder, keep_days: int, *, today: dt.date | None = None) -> list[Path]:
    """Remove the marked run folders more than ``keep_days`` days older than the run date.

    Never a folder newer than ``today - keep_days`` (today in UTC), whatever the run
    date: a run for a date in the past does not remove what came after it. Only
    folders named YYYY-MM-DD that carry the marker go, never ``folder`` itself. Returns
    the folders removed.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    oldest_kept = min(folder.date, today) - dt.timedelta(days=keep_days)
    removed = []
    for earlier in earlier_runs(folder.out_dir, oldest_kept):
        if not earlier.marker.is_file():
            log.info("not removing %s: not made by intersect-batch", earlier.path)
            continue
        shutil.rmtree(earlier.path)
        log.info("removed old run folder", extra={"folder": str(earlier.path)})
        removed.append(earlier.path)
    return removed
