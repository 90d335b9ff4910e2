"""The live bars a person watches at a terminal: one for the run, one a job under way.

Separate from the tally (:mod:`intersect_batch.tally`, whose figures the bars show) and
from the closing table (:mod:`intersect_batch.summary`): this module is the layout of
bars on a live screen, fitted to the terminal's width as it changes.

Each bar counts what the run date holds (a resumed job's bar starts where the last
invocation left it); the first line's calls/min is this invocation's pace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import Progress, Task, TaskID
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from intersect_batch.crawl import JobFinal, JobSnapshot
from intersect_batch.summary import JOB_MIN
from intersect_batch.tally import RunTally

__all__ = ["RichProgress"]

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
    name = max(min(name, JOB_MIN), min(name, width - (gap + pages + gap + eta)))
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
