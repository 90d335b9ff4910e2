"""A whole run: configs in, files and an exit status out. The CLI is a thin shell over this.

Exit statuses (also in the README):

====  ==============================================================================
0     every job is complete
1     some job failed, is partial (budget, retries exhausted) or has an invalid config
2     nothing could run: bad usage, no valid job config, missing credentials
3     another run holds the output folder's lock; this run did nothing
4     the API refused the account (credentials, funds, daily cost limit): run stopped
130   interrupted by SIGINT (Ctrl-C); progress is saved, re-run to continue
143   stopped by SIGTERM; progress is saved, re-run to continue
====  ==============================================================================
"""

from __future__ import annotations

import fnmatch
import logging
import random
import signal
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from intersect_batch._version import __version__
from intersect_batch.config import JobEntry, LoadResult, load_jobs
from intersect_batch.diff import diff_job
from intersect_batch.dispatch import CrawlResult, RunObserver, crawl
from intersect_batch.errors import ConfigError, IntersectBatchError, UsageError
from intersect_batch.lock import output_lock
from intersect_batch.manifest import (
    ConfigProblem,
    DiffCounts,
    JobLine,
    RunSummary,
    write_json,
)
from intersect_batch.providers import Provider
from intersect_batch.report import write_report
from intersect_batch.retention import mark_run_dir, prune_runs
from intersect_batch.settings import RunSettings

__all__ = [
    "EXIT_ACCOUNT",
    "EXIT_ATTENTION",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunOutcome",
    "config_problems",
    "run_batch",
    "select_jobs",
]

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_ACCOUNT = 4

log = logging.getLogger("intersect_batch")


@dataclass(frozen=True)
class RunOutcome:
    """What a run ends with: its exit status, its summary, and one line for the person."""

    exit_code: int
    summary: RunSummary | None
    message: str


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


async def _diff_jobs(result: CrawlResult, settings: RunSettings) -> None:
    """Compare every complete job that has no diff yet with its last complete run.

    A job made complete by an earlier, interrupted run of the date gets its diff now.
    """
    for job in result.jobs:
        manifest = job.manifest
        if job.status != "complete" or manifest is None or manifest.diff is not None:
            continue
        try:
            manifest.diff = await anyio.to_thread.run_sync(
                diff_job, settings.out_dir, settings.run_date, job.job_id, job.fingerprint
            )
        except OSError as exc:
            manifest.diff = DiffCounts(skipped=f"could not write the diff: {exc.strerror or exc}")
        log.info(
            "diff: %s",
            manifest.diff.skipped
            or f"{manifest.diff.new} new, {manifest.diff.lost} lost since "
            f"{manifest.diff.previous_run}",
            extra={"job": job.job_id},
        )
        await anyio.to_thread.run_sync(
            write_json, settings.run_dir / f"{job.job_id}.manifest.json", manifest
        )


def _exit_code(result: CrawlResult, config_errors: int) -> int:
    if result.interrupted_by is not None:
        return 128 + result.interrupted_by
    if result.run_fatal is not None:
        return EXIT_ACCOUNT
    if config_errors or any(job.status != "complete" for job in result.jobs):
        return EXIT_ATTENTION
    return EXIT_OK


def _summary(
    result: CrawlResult,
    loaded: LoadResult,
    settings: RunSettings,
    provider: Provider,
    exit_code: int,
) -> RunSummary:
    statuses: Counter[str] = Counter(job.status or "partial" for job in result.jobs)
    if loaded.errors:
        statuses["invalid"] = len({(e.file, e.job) for e in loaded.errors})
    lines = []
    for job in result.jobs:
        manifest = job.manifest
        lines.append(
            JobLine(
                job_id=job.job_id,
                status=job.status or "partial",
                reason=job.reason,
                items=manifest.items_written if manifest else 0,
                pages=manifest.pages if manifest else 0,
                calls=job.calls,
                retries=job.retries,
                cost_usd=round(job.cost_usd, 6),
                duration_s=round(job.duration, 3),
                output=manifest.output if manifest else None,
                diff=manifest.diff if manifest else None,
            )
        )
    # What this invocation did, not what earlier runs of the date did.
    calls = sum(job.calls for job in result.jobs)
    minutes = max(result.duration_s, 1e-9) / 60
    return RunSummary(
        version=__version__,
        run_date=settings.run_date.isoformat(),
        started_at=result.started_at,
        finished_at=result.finished_at,
        duration_s=round(result.duration_s, 3),
        exit_code=exit_code,
        needs_attention=exit_code != EXIT_OK,
        stop_reason=result.stop_reason,
        jobs_by_status=dict(sorted(statuses.items())),
        calls=calls,
        retries=sum(job.retries for job in result.jobs),
        items=sum(line.items for line in lines),
        cost_usd=round(sum(job.cost_usd for job in result.jobs), 6),
        calls_per_minute=round(calls / minutes, 2),
        new_items=sum(line.diff.new for line in lines if line.diff),
        lost_items=sum(line.diff.lost for line in lines if line.diff),
        jobs=lines,
        config_errors=config_problems(loaded.errors),
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
        },
    )


def _closing_line(summary: RunSummary, run_dir: Path, report: bool) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in summary.jobs_by_status.items())
    extra = f", report: {run_dir / 'report.html'}" if report else ""
    where = f"results in {run_dir}/ (summary: {run_dir / 'run.json'}{extra})"
    if not summary.needs_attention:
        return f"ok: {counts}; {summary.items} items, {summary.cost_usd:.4f} USD; {where}"
    reason = f" ({summary.stop_reason})" if summary.stop_reason else ""
    return f"attention: {counts}{reason}; {where}"


async def run_batch(
    config_dir: Path,
    *,
    provider: Provider,
    environ: Mapping[str, str],
    settings: RunSettings,
    job_ids: Sequence[str] = (),
    patterns: Sequence[str] = (),
    observer: RunObserver | None = None,
    handle_signals: bool = False,
    rng: random.Random | None = None,
    keep_days: int | None = None,
    report: bool = False,
) -> RunOutcome:
    """Load, select, lock, crawl, summarize. Raises UsageError / LockError before any call.

    ``keep_days``: after a run whose every job is complete, remove the run-date folders
    this tool made more than that many days before the run date. ``report``: write the
    run folder's HTML report and opportunity CSVs.
    """
    loaded = load_jobs(config_dir)
    for error in loaded.errors:
        log.error("invalid config: %s", error.describe(), extra={"file": error.file})
    if not loaded.jobs:
        raise UsageError(f"no valid job in {config_dir}: nothing to run")
    entries = select_jobs(loaded.jobs, job_ids, patterns)
    credentials = provider.credentials(environ)
    with output_lock(settings.out_dir):
        mark_run_dir(settings.run_dir)
        log.info(
            "run starting",
            extra={
                "jobs": len(entries),
                "run_date": settings.run_date.isoformat(),
                "provider": provider.name,
            },
        )
        result = await crawl(
            entries,
            provider=provider,
            credentials=credentials,
            settings=settings,
            observer=observer,
            handle_signals=handle_signals,
            rng=rng,
        )
        await _diff_jobs(result, settings)
        exit_code = _exit_code(result, len(loaded.errors))
        summary = _summary(result, loaded, settings, provider, exit_code)
        write_json(settings.run_dir / "run.json", summary)
        if report:
            try:
                path = await anyio.to_thread.run_sync(write_report, settings.run_dir)
            except (OSError, IntersectBatchError) as exc:
                # The crawl's results stand; only the report is missing.
                log.error("cannot write the report: %s", exc)
                report = False
            else:
                log.info("report written", extra={"path": str(path)})
        if keep_days is not None and exit_code == EXIT_OK:
            prune_runs(settings.out_dir, settings.run_date, keep_days)
    # Details first: the last line always says where the results are.
    lines = []
    if result.run_fatal is not None:
        lines.append(f"the API stopped the run: {result.run_fatal.describe()}")
    if result.interrupted_by is not None:
        name = signal.Signals(result.interrupted_by).name
        lines.append(f"{name}: progress is saved; run the same command to continue")
    lines.append(_closing_line(summary, settings.run_dir, report))
    return RunOutcome(exit_code=exit_code, summary=summary, message="\n".join(lines))
