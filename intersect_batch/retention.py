"""``--keep-days``: remove old run-date folders, only the ones this tool made."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

__all__ = ["MARKER", "mark_run_dir", "prune_runs"]

#: Written into every run-date folder a run creates; retention touches no other folder.
MARKER = ".intersect-batch-run"

log = logging.getLogger("intersect_batch")


def mark_run_dir(run_dir: Path) -> None:
    """Create the run-date folder (if needed) and mark it as this tool's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / MARKER
    if not marker.exists():
        marker.write_text("made by intersect-batch; --keep-days may remove this folder\n")


def prune_runs(out_dir: Path, run_date: dt.date, keep_days: int) -> list[Path]:
    """Remove run-date folders more than ``keep_days`` days before ``run_date``.

    Only folders named YYYY-MM-DD that carry the marker go; never ``run_date``'s own.
    Returns the folders removed.
    """
    oldest_kept = run_date - dt.timedelta(days=keep_days)
    removed = []
    for folder in sorted(out_dir.iterdir()):
        try:
            date = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        if date >= oldest_kept or date == run_date or not folder.is_dir():
            continue
        if not (folder / MARKER).is_file():
            log.info("not removing %s: not made by intersect-batch", folder)
            continue
        shutil.rmtree(folder)
        log.info("removed old run folder", extra={"folder": str(folder)})
        removed.append(folder)
    return removed
