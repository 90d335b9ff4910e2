"""The run's record: run.json and the metrics file, built and written in this one place.

:func:`build_summary` makes run.json's content (the night, this invocation, every job);
:func:`write_record` writes it and the metrics at the end of a run that crawled;
:func:`record_ending` is for a run that ended otherwise (refused, locked, a failed
disk, a signal outside the crawl): it writes the metrics, and makes a run.json this
invocation wrote say that a signal stopped it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import msgspec

from intersect_batch._version import __version__
from intersect_batch.config import LoadResult
from intersect_batch.crawl import CrawlResult
from intersect_batch.durable import in_thread
from intersect_batch.errors import ConfigError
from intersect_batch.exitcode import ExitCode
from intersect_batch.incremental import parent_of
from intersect_batch.jobend import Night
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, read_ledger
from intersect_batch.manifest import (
    ConfigProblem,
    InvocationTotals,
    JobLine,
    NightTotals,
    RunSummary,
    job_line,
    read_manifest,
    write_json,
)
from intersect_batch.metrics import RunMetrics, write_metrics
from intersect_batch.providers import Provider
from intersect_batch.settings import RunSettings

__all__ = [
    "FileState",
    "build_summary",
    "config_problems",
    "file_state",
    "record_ending",
    "write_record",
]

log = logging.getLogger("intersect_batch")

#: A file's identity and time of change (None: absent), to tell whether a run wrote it.
FileState = tuple[int, int] | None


def config_problems(errors: Sequence[ConfigError]) -> list[ConfigProblem]:
    """The config errors as run.json lists them."""
    return [
        ConfigProblem(
            file=error.file,
            message=error.message,
            job=error.job,
            field=error.field,
            line=error.line,
        )
        for error in errors
    ]


def _invalid_lines(errors: Sequence[ConfigError]) -> list[JobLine]:
    lines: dict[str, JobLine] = {}
    for error in errors:
        name = error.job or error.file
        if name in lines:
            continue
        lines[name] = JobLine(
            job_id=name,
            status="invalid",
            reason=error.describe(),
            items=0,
            pages=0,
            calls=0,
            retries=0,
            cost_usd=0.0,
            duration_s=0.0,
            output=None,
            config_file=error.file,
            config_line=error.line,
            this_run=True,
        )
    return list(lines.values())


def build_summary(
    result: CrawlResult,
    night: Night,
    loaded: LoadResult,
    settings: RunSettings,
    provider: Provider,
    exit_code: ExitCode,
    ledger: Ledger,
) -> RunSummary:
    lines: dict[str, JobLine] = {}
    # Every job of the run folder: the ones this run did, and the ones earlier runs did.
    for job_id in night.folder.job_ids():
        if job_id in night.lines:
            continue
        manifest = read_manifest(night.folder.manifest(job_id))
        if manifest is not None:
            lines[job_id] = job_line(manifest, this_run=False)
    lines.update(night.lines)
    # Jobs that never started and have no line of an earlier invocation: ids alone.
    not_started = [job_id for job_id in result.not_started if job_id not in lines]
    for line in _invalid_lines(loaded.errors):
        lines[line.job_id] = line
    jobs = sorted(lines.values(), key=lambda line: line.job_id)
    statuses = Counter(line.status for line in jobs)
    # The real pace: calls over the invocation's own duration. A run shorter than a
    # minute may read a little above --rate-per-minute (the limiter's burst of a few calls
    # back to back) while no minute held more calls than the rate.
    pace = result.calls * 60 / result.duration_s if result.duration_s > 0 else 0.0
    return RunSummary(
        version=__version__,
        run_date=settings.run_date.isoformat(),
        exit_code=int(exit_code),
        needs_attention=exit_code != ExitCode.OK,
        stop_reason=result.stop.reason if result.stop else None,
        night=NightTotals(
            jobs_by_status=dict(sorted(statuses.items())),
            jobs=len(jobs),
            items=sum(line.items for line in jobs),
            calls=ledger.calls,
            retries=ledger.retries,
            cost_usd=round(ledger.cost_usd, 6),
            spent_usd=round(ledger.spent_usd, 6),
            new_items=sum(line.diff.new for line in jobs if line.diff),
            lost_items=sum(line.diff.lost for line in jobs if line.diff),
            invocations=ledger.invocations,
            throttled_s=round(ledger.throttled_s, 3),
            items_repaired=sum(line.items_repaired for line in jobs),
            duplicates_dropped=sum(line.duplicates_dropped for line in jobs),
            items_waiting=sum(line.items_waiting for line in jobs),
        ),
        invocation=InvocationTotals(
            started_at=result.started_at,
            finished_at=result.finished_at,
            duration_s=round(result.duration_s, 3),
            calls=result.calls,
            retries=result.retries,
            cost_usd=round(result.cost_usd, 6),
            spent_usd=round(result.spent_usd, 6),
            items=sum(final.items_fetched for final in result.jobs),
            calls_per_minute=round(pace, 2),
            jobs_run=len({parent_of(f.job.job_id) or f.job.job_id for f in result.jobs}),
            throttled_s=result.throttled_s,
        ),
        jobs=jobs,
        config_errors=config_problems(loaded.errors),
        not_started=not_started,
        settings={
            "provider": provider.name,
            "base_url": provider.base_url,
            "out_dir": str(settings.out_dir),
            "limits": asdict(settings.limits),
            "timeouts": asdict(settings.timeouts),
            "retry": asdict(settings.retry),
            "budget_usd": settings.budget_usd,
            "fresh": settings.fresh,
            "pages_ahead": settings.pages_ahead,
            "drift_threshold": settings.drift_threshold,
            "max_calls": settings.max_calls,
        },
    )


async def write_record(
    folder: RunFolder, summary: RunSummary, *, metrics_file: Path | None, ledger: Ledger
) -> None:
    """Write run.json (an OSError if it cannot be), then the metrics file, if asked.

    A metrics file that cannot be written is logged: monitoring then sees a stale file
    and alerts, and the run's results stand.
    """
    await in_thread(write_json, folder.run_json, summary)
    if metrics_file is not None:
        await in_thread(
            _write_metrics, metrics_file, summary.exit_code, summary, ledger.throttled_s
        )


def file_state(path: Path) -> FileState:
    """A file's identity and time of change, to tell whether a run wrote it; None if absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def record_ending(
    exit_code: int,
    *,
    started: float,
    metrics_file: Path | None,
    folder: RunFolder | None = None,
    before: FileState = None,
    signum: int | None = None,
) -> RunSummary | None:
    """The record of a run that did not end through :func:`write_record`.

    With ``signum`` (a signal stopped the run after the crawl, while or after run.json
    was written), a run.json this invocation wrote (its state differs from ``before``) is
    made to say so, and returned. The metrics file, if asked, gets ``exit_code``.
    """
    summary = None
    if folder is not None and signum is not None:
        summary = _mark_interrupted(folder, before, signum)
    if metrics_file is not None:
        throttled = None
        if summary is not None and folder is not None:
            with contextlib.suppress(OSError, msgspec.DecodeError):
                throttled = read_ledger(folder.ledger).throttled_s
        duration = round(time.time() - started, 3)
        _write_metrics(metrics_file, exit_code, summary, throttled, duration_s=duration)
    return summary


def _mark_interrupted(folder: RunFolder, before: FileState, signum: int) -> RunSummary | None:
    if file_state(folder.run_json) in (None, before):
        return None
    try:
        summary = msgspec.json.decode(folder.run_json.read_bytes(), type=RunSummary)
    except (OSError, msgspec.DecodeError):
        return None
    code = 128 + signum
    if summary.exit_code != code:
        name = signal.Signals(signum).name
        summary.exit_code = code
        summary.needs_attention = True
        summary.stop_reason = summary.stop_reason or f"interrupted by {name} after the crawl"
        with contextlib.suppress(OSError):
            write_json(folder.run_json, summary)
    return summary


def _write_metrics(
    path: Path,
    exit_code: int,
    summary: RunSummary | None,
    night_throttled_s: float | None,
    *,
    duration_s: float | None = None,
) -> None:
    if duration_s is None:
        duration_s = summary.invocation.duration_s if summary is not None else 0.0
    figures = RunMetrics(
        exit_code=exit_code,
        finished_at=time.time(),
        duration_s=duration_s,
        summary=summary,
        night_throttled_s=night_throttled_s,
    )
    try:
        write_metrics(path, figures)
    except OSError as exc:
        # Monitoring then sees a stale file and alerts; the run's results stand.
        log.error("cannot write the metrics file %s: %s", path, exc.strerror or exc)
