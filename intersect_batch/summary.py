"""The closing summary table: one row a job, the night's and this invocation's totals,
and below it what needs attention, each reason whole.

Separate from the live views (:mod:`intersect_batch.tally`, :mod:`intersect_batch.progress`):
it reads the finished run's :class:`~intersect_batch.manifest.RunSummary`, not the crawl's
snapshots, and is drawn once, when the run is over.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from intersect_batch.manifest import JobLine, RunSummary

__all__ = ["JOB_MIN", "TABLE_ROWS", "attention_lines", "summary_table"]

_COLOURS = {"complete": "green", "failed": "red", "partial": "yellow", "invalid": "red"}
#: A line under the heading and above the totals, no other rules: narrow, and copyable.
_BOX = box.Box(
    "    \n"  # top
    "    \n"  # heading
    " ── \n"  # under the heading
    "    \n"  # (unused)
    " ── \n"  # between sections: above the totals
    " ── \n"  # (unused)
    "    \n"  # (unused)
    "    \n"  # bottom
)
#: Columns of the summary table in the order they are dropped when the terminal is narrow;
#: the job, its status, its items and its cost always stay.
_DROPPABLE = ("retries", "time", "pages", "calls", "lost", "new")
#: The job column is never cut narrower than this (nor the bars' id column).
JOB_MIN = 12
#: Past this many jobs the table shows this many, those that need attention first, and
#: sums up the others in one row; the reasons below stop at as many (run.json has all).
TABLE_ROWS = 40
_RANK = {"invalid": 0, "failed": 1, "partial": 2}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _compared(job: JobLine) -> bool:
    return job.diff is not None and job.diff.skipped is None


def _cells(job: JobLine) -> dict[str, str]:
    diff = job.diff if _compared(job) else None
    return {
        "items": f"{job.items:,}",
        # Empty: the job was compared with no earlier night (no diff).
        "new": "" if diff is None else f"{diff.new:,}",
        "lost": "" if diff is None else f"{diff.lost:,}",
        "pages": str(job.pages),
        "calls": str(job.calls),
        "retries": str(job.retries),
        "cost": f"{job.cost_usd:.4f}",
        # A job an earlier invocation of the date ran took no time now.
        "time": f"{job.duration_s:.1f}s" if job.this_run else "earlier",
    }


def _rows(summary: RunSummary) -> tuple[list[JobLine], list[JobLine]]:
    """The jobs the table shows a row each, and those it sums up in one row."""
    jobs = summary.jobs
    if len(jobs) <= TABLE_ROWS:
        return list(jobs), []
    ranked = sorted(jobs, key=lambda job: (_RANK.get(job.status, 3), job.job_id))
    return ranked[:TABLE_ROWS], ranked[TABLE_ROWS:]


def _rest_row(rest: Sequence[JobLine]) -> tuple[str, Text, dict[str, str]]:
    """One row for the jobs not shown: how many, their statuses, their sums."""
    statuses = collections.Counter(job.status for job in rest)
    status = ", ".join(f"{n:,} {name}" for name, n in sorted(statuses.items()))
    cells = {
        "items": f"{sum(job.items for job in rest):,}",
        "pages": str(sum(job.pages for job in rest)),
        "calls": str(sum(job.calls for job in rest)),
        "retries": str(sum(job.retries for job in rest)),
        "new": "",
        "lost": "",
        "cost": f"{sum(job.cost_usd for job in rest):.4f}",
        "time": "",
    }
    return f"{len(rest):,} more jobs", Text(status), cells


def _table(summary: RunSummary, columns: Sequence[str], job_width: int | None = None) -> Table:
    table = Table(
        title=f"intersect-batch run {summary.run_date}",
        title_justify="left",
        box=_BOX,
        show_edge=False,
        pad_edge=False,
    )
    headings = {
        "items": "items",
        "new": "new",
        "lost": "lost",
        "pages": "pages",
        "calls": "calls",
        "retries": "retries",
        "cost": "cost USD",
        "time": "time",
    }
    rows: list[tuple[str, Text, list[str], str]] = []
    shown, rest = _rows(summary)
    for job in shown:
        cells = _cells(job)
        status = Text(job.status, style=_COLOURS.get(job.status, ""))
        rows.append((job.job_id, status, [cells[column] for column in columns], ""))
    if rest:
        name, status, cells = _rest_row(rest)
        rows.append((name, status, [cells[column] for column in columns], "dim"))
    night, invocation = summary.night, summary.invocation
    compared = any(_compared(job) for job in summary.jobs)
    night_cells = {
        "items": f"{night.items:,}",
        "new": f"{night.new_items:,}" if compared else "",
        "lost": f"{night.lost_items:,}" if compared else "",
        "pages": str(sum(job.pages for job in summary.jobs)),
        "calls": str(night.calls),
        "retries": str(night.retries),
        "cost": f"{night.cost_usd:.4f}",
        "time": "",
    }
    rows.append(
        (
            f"night, {_plural(night.invocations, 'invocation')}",
            Text(_plural(night.jobs, "job")),
            [night_cells[column] for column in columns],
            "bold",
        )
    )
    invocation_cells = {
        "items": f"{invocation.items:,}",
        "new": "",
        "lost": "",
        "pages": "",
        "calls": str(invocation.calls),
        "retries": str(invocation.retries),
        "cost": f"{invocation.cost_usd:.4f}",
        "time": f"{invocation.duration_s:.1f}s",
    }
    rows.append(
        (
            "this invocation",
            Text(f"{_plural(invocation.jobs_run, 'job')} run"),
            [invocation_cells[column] for column in columns],
            "bold",
        )
    )
    # A job column narrowed to fit ends a cut id in "…": never a real-looking shorter id.
    table.add_column("job", no_wrap=True, overflow="ellipsis", max_width=job_width)
    table.add_column("status", no_wrap=True)
    for column in columns:
        table.add_column(headings[column], justify="right", no_wrap=True)
    for number, (name, status, row_cells, style) in enumerate(rows):
        if number == len(shown) + bool(rest):
            table.add_section()
        table.add_row(name, status, *row_cells, style=style or None)
    return table


def _notes(summary: RunSummary) -> list[Text]:
    """What needs attention, each job with its whole reason (the API's whole message).

    Jobs the run's own stop left partial (a signal, the budget) share one line.
    """
    notes = []
    if summary.stop_reason:
        notes.append(Text.assemble(("stopped: ", "bold yellow"), summary.stop_reason))
    if summary.not_started:
        count = len(summary.not_started)
        noun = "job" if count == 1 else "jobs"
        notes.append(Text(f"{count:,} {noun} not started (run.json lists them)"))
    reasons = [
        job
        for job in summary.jobs
        if job.status != "complete" and job.reason and job.reason != summary.stop_reason
    ]
    for job in reasons[:TABLE_ROWS]:
        note = Text()
        note.append(job.job_id, style="bold")
        note.append(f" {job.status}: ", style=_COLOURS.get(job.status, ""))
        note.append(job.reason or "")
        notes.append(note)
    if len(reasons) > TABLE_ROWS:
        notes.append(Text(f"and {len(reasons) - TABLE_ROWS:,} more (run.json has every reason)"))
    return notes


def attention_lines(summary: RunSummary) -> list[str]:
    """What needs attention as plain lines (``stopped: ...``, ``<job> <status>: <reason>``),
    each reason whole: the summary table's notes, for a mail or a log."""
    return [note.plain for note in _notes(summary)]


class _SummaryView:
    """The summary table at the terminal's width, then the reasons of what needs attention."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = ["items", "new", "lost", "pages", "calls", "retries", "cost", "time"]
        if not any(_compared(job) for job in self.summary.jobs):
            columns.remove("new")
            columns.remove("lost")
        if not any(job.retries for job in self.summary.jobs) and not self.summary.night.retries:
            columns.remove("retries")
        table = _table(self.summary, columns)
        # Measured without the width limit: a measurement within it is clamped to it.
        unbounded = options.update(max_width=10**6)
        for column in _DROPPABLE:
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                break
            if column in columns:
                columns.remove(column)
                table = _table(self.summary, columns)
        excess = Measurement.get(console, unbounded, table).maximum - options.max_width
        if excess > 0:
            # Still too wide: the job column gives way, every figure and status stays whole.
            names = [job.job_id for job in self.summary.jobs]
            names += ["night, 99 invocations", "this invocation"]
            widest = max(len(name) for name in names)
            table = _table(self.summary, columns, job_width=max(JOB_MIN, widest - excess))
        notes = _notes(self.summary)
        yield table
        if notes:
            yield Group(Text("needs attention:", style="bold"), *notes)


def summary_table(summary: RunSummary) -> RenderableType:
    """The end-of-run table (one row a job, the night's and this invocation's totals,
    labelled), fitted to the terminal, and below it each reason in full."""
    return _SummaryView(summary)
