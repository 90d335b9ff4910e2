"""What a person sees while a run goes: live bars on a terminal, log lines under cron.

Figures come on two bases, and each place says which. **The night**: what the run
date's files hold, earlier invocations included (a resumed job's bar starts where the
last invocation left it: its pages, items and cost all count what is on disk).
**This invocation**: what the command now running did (its pace, its calls).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.progress import Progress, Task, TaskID
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from intersect_batch.crawl import CrawlObserver, JobFinal, JobSnapshot
from intersect_batch.manifest import JobLine, RunSummary

__all__ = ["LogProgress", "RichProgress", "RunTally", "attention_lines", "summary_table"]

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


# -- the bars -------------------------------------------------------------------------------

#: Bars are never wider than this, nor narrower (else they are left out).
BAR_MAX, BAR_MIN = 40, 6
#: The secondary columns of a bar's line, the first kept longest when the terminal is
#: narrow: the job id, ``n/N pages`` and the ETA are always shown whole.
_SECONDARY = ("items", "cost", "retries", "rate")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


def _pages(task: Task) -> str:
    total = "?" if task.total is None else f"{int(task.total)}"
    return f"{int(task.completed)}/{total} pages"


def _secondary(task: Task, column: str) -> str:
    fields = task.fields
    if column == "items":
        return f"{fields.get('items', 0):,} items"
    if column == "cost":
        return f"{fields.get('cost', 0.0):.4f} USD"
    if column == "retries":
        retries = int(fields.get("retries", 0))
        return f"{retries} retries" if retries else ""
    rate = fields.get("rate")
    return "" if rate is None else f"{rate:.0f} calls/min"


@dataclass(frozen=True)
class _Layout:
    name: int
    bar: int
    pages: int
    eta: int
    secondary: tuple[tuple[str, int], ...]


def _bar_layout(tasks: Sequence[Task], width: int) -> _Layout:
    """Which columns the bars show at ``width``, and how wide each is.

    The page counter and the ETA are never cut; secondary columns go first (the rate, the
    retries, the cost, the items), then the bar shrinks, then it goes; an id too long for
    what is left is cut to end in "…" (never shorter than 12 characters).
    """
    name = max((len(task.description) for task in tasks), default=0)
    pages = max((len(_pages(task)) for task in tasks), default=0)
    eta = len(_duration(0))
    secondary = []
    for column in _SECONDARY:
        size = max((len(_secondary(task, column)) for task in tasks), default=0)
        if size:
            secondary.append((column, size))
    gap = 2
    # Too narrow for the whole id: the id gives way (ending in "…"), the pages and ETA stay.
    name = max(min(name, _JOB_MIN), min(name, width - (gap + pages + gap + eta)))
    fixed = name + gap + pages + gap + eta
    while secondary and fixed + sum(s + gap for _, s in secondary) + BAR_MIN + gap > width:
        secondary.pop()
    room = width - fixed - sum(s + gap for _, s in secondary) - gap
    bar = min(BAR_MAX, room) if room >= BAR_MIN else 0
    return _Layout(name=name, bar=bar, pages=pages, eta=eta, secondary=tuple(secondary))


class _BarsView:
    """The bars as one table whose columns fit the terminal's width."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = [task for task in tasks if task.visible]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = _bar_layout(self.tasks, options.max_width)
        grid = Table.grid(padding=(0, 1), pad_edge=False, collapse_padding=False)
        grid.padding = (0, 1, 0, 1)
        grid.add_column(width=layout.name, no_wrap=True, overflow="ellipsis", style="bold")
        if layout.bar:
            grid.add_column(width=layout.bar, no_wrap=True)
        grid.add_column(width=layout.pages, no_wrap=True, justify="right")
        for _, size in layout.secondary:
            grid.add_column(width=size, no_wrap=True, justify="right")
        grid.add_column(width=layout.eta, no_wrap=True, style="cyan")
        for task in self.tasks:
            row: list[RenderableType] = [task.description]
            if layout.bar:
                row.append(
                    ProgressBar(
                        total=max(0.0, task.total) if task.total is not None else None,
                        completed=max(0.0, task.completed),
                        width=layout.bar,
                        animation_time=task.get_time(),
                    )
                )
            row.append(_pages(task))
            row.extend(_secondary(task, column) for column, _ in layout.secondary)
            finished = task.total is not None and task.completed >= task.total
            row.append(_duration(0 if finished else task.time_remaining))
            grid.add_row(*row)
        yield grid


class _Bars(Progress):
    def get_renderables(self) -> Iterable[RenderableType]:
        yield _BarsView(self.tasks)


class RichProgress(RunTally):
    """For a terminal: one bar for the run and one for each job in progress.

    Each bar counts what the run date holds (a resumed job starts where it was left);
    the first line's calls/min is this invocation's pace.
    """

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.progress = _Bars(console=console, transient=True)
        self._overall = self.progress.add_task("all jobs", total=None)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _refresh_overall(self) -> None:
        done = self.pages_done()
        self.progress.update(
            self._overall,
            total=done + self.pages_left(),
            completed=done,
            items=self.items_done(),
            cost=self.cost,
            retries=self.retries,
            rate=self.calls_per_minute(),
        )

    def _refresh_job(self, job: JobSnapshot, *, visible: bool) -> None:
        task = self._tasks.get(job.job_id)
        if task is None and visible and job.status is None:
            # A bar is made when there is something to show: a night of many jobs holds
            # bars for the jobs under way, not one for each job waiting its turn.
            task = self._tasks[job.job_id] = self.progress.add_task(job.job_id, total=None)
        if task is not None:
            self.progress.update(
                task,
                total=job.pages_planned,
                completed=job.pages_done,
                items=self.job_items(job.job_id),
                cost=job.cost_usd,
                retries=job.retries,
                visible=visible,
            )

    def job_started(self, job: JobSnapshot) -> None:
        super().job_started(job)
        # A resumed job shows at once where the last invocation left it.
        self._refresh_job(job, visible=job.pages_done > 0)
        self._refresh_overall()

    def page_done(self, job: JobSnapshot, items: int, cost: float) -> None:
        super().page_done(job, items, cost)
        self._refresh_job(job, visible=True)
        self._refresh_overall()

    def call_retried(self, job: JobSnapshot, offset: int, message: str, delay: float) -> None:
        super().call_retried(job, offset, message, delay)
        self._refresh_job(job, visible=job.pages_done > 0)
        self._refresh_overall()

    def job_finished(self, job: JobSnapshot, final: JobFinal) -> None:
        super().job_finished(job, final)
        task = self._tasks.pop(job.job_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self._refresh_overall()

    def stopping(self, message: str) -> None:
        """Say above the bars what the run waits for, and how to stop it at once."""
        super().stopping(message)
        self.console.print(Text(message, style="bold yellow"))


# -- the summary table ---------------------------------------------------------------------

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
#: The job column is never cut narrower than this.
_JOB_MIN = 12
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
            table = _table(self.summary, columns, job_width=max(_JOB_MIN, widest - excess))
        notes = _notes(self.summary)
        yield table
        if notes:
            yield Group(Text("needs attention:", style="bold"), *notes)


def summary_table(summary: RunSummary) -> RenderableType:
    """The end-of-run table (one row a job, the night's and this invocation's totals,
    labelled), fitted to the terminal, and below it each reason in full."""
    return _SummaryView(summary)
