"""Every path of an output folder, and the one walk over its earlier run folders.

An output folder (``--out``) holds one folder per run date; nothing else in the package
spells a file name::

    OUT/
      .intersect-batch.lock            the lock against overlapping runs
      2026-11-29/                      a run folder (RunFolder)
        .intersect-batch-run           the marker: retention removes only marked folders
        <id>.jsonl                     a job's complete result
        <id>.manifest.json             a job's manifest
        <id>.diff.jsonl                what changed since the job's last complete run
        <id>.opportunities.csv         the report's CSV of referring domains
        report.html, run.json, metrics.prom
        .ledger.json                   the run date's spend and calls, all invocations
        .state/<id>.part               a job's durable pages, in order
        .state/<id>.checkpoint.json    what of the part file and the spool is durable
        .state/<id>.spool/<k>.jsonl    pages that arrived before the pages in front of them
        .state/<id>+new-<n>.jsonl      an incremental night's request n, until merged
        .state/<id>+new-<n>.manifest.json

:func:`earlier_runs` is the one walk over the run folders before a date, newest first:
the diff, the dry run, the report's history and retention all use it, so they agree on
what "the last run" is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LEDGER_JSON",
    "LOCK_NAME",
    "MANIFEST_SUFFIX",
    "MARKER_NAME",
    "METRICS_PROM",
    "REPORT_HTML",
    "RUN_JSON",
    "STATE_DIR",
    "RunFolder",
    "diff_name",
    "discard_state",
    "earlier_runs",
    "job_ids_in",
    "lock_path",
    "manifest_name",
    "opportunities_name",
    "result_name",
    "run_date_of",
]

LOCK_NAME = ".intersect-batch.lock"
MARKER_NAME = ".intersect-batch-run"
RUN_JSON = "run.json"
REPORT_HTML = "report.html"
METRICS_PROM = "metrics.prom"
LEDGER_JSON = ".ledger.json"
STATE_DIR = ".state"
MANIFEST_SUFFIX = ".manifest.json"
_CHECKPOINT = ".checkpoint.json"
_DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


def result_name(job_id: str) -> str:
    """A job's result file's name."""
    return f"{job_id}.jsonl"


def manifest_name(job_id: str) -> str:
    """A job's manifest's name."""
    return f"{job_id}{MANIFEST_SUFFIX}"


def diff_name(job_id: str) -> str:
    """A job's diff file's name."""
    return f"{job_id}.diff.jsonl"


def opportunities_name(job_id: str) -> str:
    """A job's opportunities CSV's name."""
    return f"{job_id}.opportunities.csv"


@dataclass(frozen=True)
class RunFolder:
    """The files of one run date under an output folder."""

    out_dir: Path
    date: dt.date

    @classmethod
    def at(cls, path: Path) -> RunFolder | None:
        """The run folder at ``path`` (``OUT/YYYY-MM-DD``), or None if it is not named so."""
        date = run_date_of(path)
        return None if date is None else cls(path.parent, date)

    @property
    def path(self) -> Path:
        """``OUT/YYYY-MM-DD``."""
        return self.out_dir / self.date.isoformat()

    @property
    def name(self) -> str:
        """The run date, ``YYYY-MM-DD``."""
        return self.date.isoformat()

    # -- per job ---------------------------------------------------------------------------

    def _home(self, job_id: str) -> Path:
        # A request of an incremental night (an id holding '+', which no config id can)
        # is crawled like a job, but its result and manifest are progress, not results.
        return self.state if "+" in job_id else self.path

    def result(self, job_id: str) -> Path:
        """The complete result, one item a line (exists only when the job is complete)."""
        return self._home(job_id) / result_name(job_id)

    def manifest(self, job_id: str) -> Path:
        """The job's manifest."""
        return self._home(job_id) / manifest_name(job_id)

    def diff(self, job_id: str) -> Path:
        """The new and lost items since the job's last complete run."""
        return self.path / diff_name(job_id)

    def opportunities(self, job_id: str) -> Path:
        """The report's CSV of referring domains."""
        return self.path / opportunities_name(job_id)

    # -- the run --------------------------------------------------------------------------

    @property
    def run_json(self) -> Path:
        """The run's summary."""
        return self.path / RUN_JSON

    @property
    def report(self) -> Path:
        """The HTML report."""
        return self.path / REPORT_HTML

    @property
    def metrics(self) -> Path:
        """The default place of the Prometheus text file."""
        return self.path / METRICS_PROM

    @property
    def ledger(self) -> Path:
        """The run date's spend and calls, over every invocation."""
        return self.path / LEDGER_JSON

    @property
    def marker(self) -> Path:
        """Marks a folder this tool made; retention removes no other."""
        return self.path / MARKER_NAME

    # -- progress of unfinished jobs --------------------------------------------------------

    @property
    def state(self) -> Path:
        """Where the progress of unfinished jobs is kept."""
        return self.path / STATE_DIR

    def part(self, job_id: str) -> Path:
        """The job's durable pages, in order, until it is complete."""
        return self.state / f"{job_id}.part"

    def checkpoint(self, job_id: str) -> Path:
        """What of the part file and the spool is durable."""
        return self.state / f"{job_id}{_CHECKPOINT}"

    def spool(self, job_id: str) -> Path:
        """The folder of the job's pages that came before the pages in front of them."""
        return self.state / f"{job_id}.spool"

    def spooled_page(self, job_id: str, page: int) -> Path:
        """One early page in the spool."""
        return self.spool(job_id) / f"{page}.jsonl"

    def job_ids(self) -> list[str]:
        """The ids of the jobs that have a manifest here, sorted."""
        return job_ids_in(self.path)

    def unfinished_job_ids(self) -> list[str]:
        """The ids of the jobs that have a checkpoint in the state folder, sorted."""
        try:
            names = [p.name for p in self.state.iterdir() if p.name.endswith(_CHECKPOINT)]
        except OSError:
            return []
        return sorted(name.removesuffix(_CHECKPOINT) for name in names)


def job_ids_in(folder: Path) -> list[str]:
    """The ids of the jobs that have a manifest in ``folder``, sorted."""
    try:
        names = [p.name for p in folder.iterdir() if p.name.endswith(MANIFEST_SUFFIX)]
    except OSError:
        return []
    return sorted(name.removesuffix(MANIFEST_SUFFIX) for name in names)


def lock_path(out_dir: Path) -> Path:
    """The lock file of an output folder."""
    return out_dir / LOCK_NAME


def run_date_of(path: Path) -> dt.date | None:
    """The date a run folder is named after, or None when the name is not ``YYYY-MM-DD``."""
    if not _DATE_NAME.fullmatch(path.name):
        return None
    try:
        return dt.date.fromisoformat(path.name)
    except ValueError:
        return None


def earlier_runs(out_dir: Path, before: dt.date) -> list[RunFolder]:
    """The run folders of ``out_dir`` dated before ``before``, the most recent first.

    Only folders named ``YYYY-MM-DD`` (a valid date) count; a symlink to a folder is
    not followed (it may be shared with another output folder).
    """
    found: list[RunFolder] = []
    try:
        entries = list(out_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        date = run_date_of(entry)
        if date is None or date >= before:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        found.append(RunFolder(out_dir, date))
    found.sort(key=lambda folder: folder.date, reverse=True)
    return found


def discard_state(folder: RunFolder, *, only_if_empty: bool = False) -> None:
    """Remove the run date's progress (``.state/``): ``--fresh``, or after a run.

    ``only_if_empty``: remove the folder only when nothing is left in it (after a run
    whose jobs all finished). A state folder that is a symlink is unlinked, never
    followed: what it points to is not this run's. Errors are ignored: a folder left
    behind is resumed or removed by the next run.
    """
    state = folder.state
    with contextlib.suppress(OSError):
        if only_if_empty:
            state.rmdir()
        elif state.is_symlink():
            state.unlink()
        else:
            shutil.rmtree(state, ignore_errors=True)
