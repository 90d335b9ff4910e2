"""What a person sees while a run goes: live bars on a terminal, log lines under cron."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from intersect_batch.crawl import CrawlObserver, JobFinal, JobSnapshot
from intersect_batch.manifest import RunSummary

__all__ = ["LogProgress", "RichProgress", "RunTally", "summary_table"]

log = logging.getLogger("intersect_batch")


class RunTally(CrawlObserver):
    """Running totals of a run, from the crawler's snapshots of its jobs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.jobs: dict[str, JobSnapshot] = {}
        self.finished = 0
        self.items = 0
        self.pages = 0
        self.retried = 0

    def job_started(self, job: JobSnapshot) -> None:
        self.jobs[job.job_id] = job

    def page_done(self, job: JobSnapshot, items: int, cost: float) -> None:
        self.jobs[job.job_id] = job
        self.pages += 1
        self.items += items

    def call_retried(self, job: JobSnapshot, offset: int, message: str, delay: float) -> None:
        self.jobs[job.job_id] = job
        self.retried += 1

    def job_finished(self, job: JobSnapshot, final: JobFinal) -> None:
        self.jobs[job.job_id] = job
        self.finished += 1

    @property
    def calls(self) -> int:
        """Calls made so far, this run and earlier runs of the date."""
        return sum(job.calls for job in self.jobs.values())

    @property
    def retries(self) -> int:
        """Retried calls so far."""
        return sum(job.retries for job in self.jobs.values())

    @property
    def cost(self) -> float:
        """USD the API reported so far."""
        return sum(job.cost_usd for job in self.jobs.values())

    def pages_left(self) -> int:
        """Pages still to fetch; a job whose count is unknown counts one."""
        left = 0
        for job in self.jobs.values():
            if job.status is not None:
                continue
            planned = job.pages_planned if job.pages_planned is not None else 1
            left += max(0, planned - job.pages_done)
        return left

    def calls_per_minute(self) -> float:
        """This run's pace so far: answered calls, pages and retried ones."""
        elapsed = max(self.clock() - self.started, 1e-9)
        return (self.pages + self.retried) * 60 / elapsed

    def eta_seconds(self) -> float | None:
        """Seconds to go at the pace so far; None before the first page."""
        if not self.pages:
            return None
        elapsed = self.clock() - self.started
        return self.pages_left() * elapsed / self.pages


class LogProgress(RunTally):
    """For cron: a ``progress`` log line every ``interval`` seconds, no control characters."""

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
                "jobs": len(self.jobs),
                "pages": self.pages,
                "pages_left": self.pages_left(),
                "items": self.items,
                "calls": self.calls,
                "retries": self.retries,
                "cost_usd": round(self.cost, 5),
                "calls_per_minute": round(self.calls_per_minute(), 1),
                "eta_s": None if eta is None else round(eta),
            },
        )

    async def watch(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            self.report()


class RichProgress(RunTally):
    """For a terminal: one bar for the run and one for each job in progress."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._overall = self.progress.add_task("all jobs", total=None, detail="")
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _refresh_overall(self) -> None:
        detail = (
            f"{self.items} items  {self.cost:.4f} USD  "
            f"{self.calls_per_minute():.0f} calls/min  {self.retries} retries"
        )
        self.progress.update(
            self._overall,
            total=self.pages + self.pages_left(),
            completed=self.pages,
            detail=detail,
        )

    def job_started(self, job: JobSnapshot) -> None:
        super().job_started(job)
        if job.status is None:
            self._tasks[job.job_id] = self.progress.add_task(
                job.job_id,
                total=job.pages_planned,
                completed=job.pages_done,
                detail="",
                visible=False,
            )
        self._refresh_overall()

    def page_done(self, job: JobSnapshot, items: int, cost: float) -> None:
        super().page_done(job, items, cost)
        task = self._tasks.get(job.job_id)
        if task is not None:
            retried = f"  {job.retries} retries" if job.retries else ""
            self.progress.update(
                task,
                total=job.pages_planned,
                completed=job.pages_done,
                detail=f"{job.items} items  {job.cost_usd:.4f} USD{retried}",
                visible=True,
            )
        self._refresh_overall()

    def call_retried(self, job: JobSnapshot, offset: int, message: str, delay: float) -> None:
        super().call_retried(job, offset, message, delay)
        self._refresh_overall()

    def job_finished(self, job: JobSnapshot, final: JobFinal) -> None:
        super().job_finished(job, final)
        task = self._tasks.pop(job.job_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self._refresh_overall()


def summary_table(summary: RunSummary) -> Table:
    """The end-of-run table: one row a job."""
    table = Table(title=f"intersect-batch run {summary.run_date}", title_justify="left")
    for name, justify in (
        ("job", "left"),
        ("status", "left"),
        ("items", "right"),
        ("pages", "right"),
        ("calls", "right"),
        ("retries", "right"),
        ("cost USD", "right"),
        ("time", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    colours = {"complete": "green", "failed": "red", "partial": "yellow", "invalid": "red"}
    for job in summary.jobs:
        status = f"[{colours[job.status]}]{job.status}[/]"
        if job.reason and job.status != "complete":
            status += f" ({job.reason[:60]})"
        table.add_row(
            job.job_id,
            status,
            f"{job.items:,}",
            str(job.pages),
            str(job.calls),
            str(job.retries),
            f"{job.cost_usd:.4f}",
            f"{job.duration_s:.1f}s",
        )
    table.add_section()
    night = summary.night
    table.add_row(
        "total",
        "",
        f"{night.items:,}",
        "",
        str(night.calls),
        str(night.retries),
        f"{night.cost_usd:.4f}",
        f"{summary.invocation.duration_s:.1f}s",
    )
    return table
