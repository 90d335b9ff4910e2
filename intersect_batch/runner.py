"""A whole run: configs in, files and an exit status out. The CLI is a thin shell over this.

The steps, in order: load and select the jobs, read the credentials, lock the output
folder, read the night's ledger, skip the jobs already complete for the date, crawl the
others (each job's diff and manifest are written as it ends), then ``run.json``, the
report and retention. Exit statuses: :mod:`intersect_batch.exitcode`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import random
import resource
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from intersect_batch._version import __version__
from intersect_batch.config import JobEntry, LoadResult, load_jobs
from intersect_batch.crawl import CrawlJob, CrawlObserver, CrawlResult, Fetch, JobFinal, crawl
from intersect_batch.diff import diff_job
from intersect_batch.durable import in_thread
from intersect_batch.errors import ConfigError, IntersectBatchError, UsageError
from intersect_batch.exitcode import ExitCode, exit_code_for_run
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger
from intersect_batch.lock import output_lock
from intersect_batch.logs import scrubbed_logs
from intersect_batch.manifest import (
    ConfigProblem,
    DiffCounts,
    InvocationTotals,
    JobLine,
    JobManifest,
    NightTotals,
    RunSummary,
    build_manifest,
    is_complete,
    night_ledger,
    previous_total,
    read_manifest,
    write_json,
)
from intersect_batch.metrics import RunMetrics, write_metrics
from intersect_batch.plan import fingerprint, page_count, safety_cap, select_jobs
from intersect_batch.providers import Provider
from intersect_batch.report import write_report
from intersect_batch.retention import mark_run_dir, prune_runs
from intersect_batch.settings import RunSettings
from intersect_batch.store import JobStore
from intersect_batch.transport import http_fetch

__all__ = [
    "RunOutcome",
    "config_problems",
    "crawl_job",
    "run_batch",
]

log = logging.getLogger("intersect_batch")

#: Open files a run needs besides one connection per call in flight: the writers' files,
#: the logs, the loop, spare connections.
OPEN_FILES_SPARE = 64


@dataclass(frozen=True)
class RunOutcome:
    """What a run ends with: its exit status, its summary, and the lines for the person."""

    exit_code: ExitCode
    summary: RunSummary | None
    message: str


def crawl_job(entry: JobEntry, folder: RunFolder) -> CrawlJob:
    """What the crawl needs of a job config, with its last complete run's total_count."""
    job = entry.job
    params = job.api_params()
    print_ = fingerprint(params, job.page_size, job.max_items)
    return CrawlJob(
        job_id=job.id,
        params=params,
        page_size=job.page_size,
        max_items=job.max_items,
        fingerprint=print_,
        previous_total=previous_total(folder.out_dir, folder.date, job.id, print_),
    )


def _plan_jobs(
    entries: Sequence[JobEntry], folder: RunFolder, fresh: bool
) -> tuple[list[CrawlJob], list[JobLine]]:
    """The jobs to crawl, and the run.json lines of those already complete for the date."""
    todo: list[CrawlJob] = []
    done: list[JobLine] = []
    for entry in entries:
        job = crawl_job(entry, folder)
        manifest = None if fresh else is_complete(folder, job.job_id, job.fingerprint)
        if manifest is not None:
            # A crash after the manifest, before the job's progress files went, left
            # files that nothing reads again: they go now.
            with contextlib.suppress(OSError):
                JobStore(folder, job.job_id).discard()
            line = _job_line(manifest, this_run=False)
            line.reason = "already complete"
            done.append(line)
        else:
            todo.append(job)
    return todo, done


def fit_open_files(settings: RunSettings) -> RunSettings:
    """Settings whose concurrency the process's open-file limit (``ulimit -n``) allows.

    Each call in flight holds a connection, and the writers, logs and the loop need a
    few dozen more: the soft limit is raised as far as the hard one allows, and when
    that is not enough the concurrency is lowered, with a warning that says why.
    """
    needed = settings.limits.concurrency + OPEN_FILES_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return settings
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft >= needed:
        return settings
    fitted = max(1, soft - OPEN_FILES_SPARE)
    log.warning(
        "--concurrency %d needs about %d open files and ulimit -n allows %d: using %d "
        "(raise the limit with ulimit -n)",
        settings.limits.concurrency,
        needed,
        soft,
        fitted,
    )
    limits = dataclasses.replace(settings.limits, concurrency=fitted)
    return dataclasses.replace(settings, limits=limits)


def _expected_calls(job: CrawlJob) -> int | None:
    if job.previous_total is not None:
        return page_count(job.previous_total, job.page_size, job.max_items)
    if job.max_items is not None:
        return page_count(job.max_items, job.page_size, job.max_items)
    return None


def with_safety_cap(settings: RunSettings, jobs: Sequence[CrawlJob]) -> RunSettings:
    """The settings with ``max_calls`` resolved: the automatic cap when it is None."""
    if settings.max_calls is not None:
        return settings
    cap = safety_cap([_expected_calls(job) for job in jobs])
    return dataclasses.replace(settings, max_calls=cap)


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


@dataclass
class _Night:
    """What the runner learns about the date's jobs while the crawl goes on."""

    folder: RunFolder
    settings: RunSettings
    entries: dict[str, JobEntry]
    #: What run.json needs of each job that ended, or was found complete, in this
    #: invocation: one compact line a job, kept until the run ends (not its manifest).
    lines: dict[str, JobLine] = field(default_factory=dict)

    async def job_ended(self, final: JobFinal) -> None:
        """Diff a complete job against its last complete run, then write its manifest."""
        job_id = final.job.job_id
        diff = None
        if final.status == "complete":
            diff = await self._diff(final)
        entry = self.entries[job_id]
        manifest = build_manifest(
            final,
            config_file=str(entry.file),
            config_line=entry.line,
            drift_threshold=self.settings.drift_threshold,
            diff=diff,
        )
        if manifest.total_count.flagged:
            log.warning(
                "total_count moved by %.1f%% while paging",
                manifest.total_count.drift * 100,
                extra={"job": job_id},
            )
        try:
            await in_thread(write_json, self.folder.manifest(job_id), manifest)
        except OSError as exc:
            log.error("cannot write the manifest: %s", exc.strerror or exc, extra={"job": job_id})
        self.lines[job_id] = _job_line(manifest, this_run=True, duration_s=final.duration_s)
        level = logging.INFO if manifest.status == "complete" else logging.WARNING
        text = f"job {manifest.status}" + (f": {manifest.reason}" if manifest.reason else "")
        if manifest.status == "failed":
            # The failure itself was logged the moment it happened: this closes the job.
            level, text = logging.INFO, "job ended: failed"
        log.log(
            level,
            "%s",
            text,
            extra={
                "job": job_id,
                "status": manifest.status,
                "reason": manifest.reason,
                "items": manifest.items_written,
                "pages": manifest.pages,
                "calls": manifest.calls,
                "retries": manifest.retries,
                "cost_usd": manifest.cost_usd,
            },
        )

    async def _diff(self, final: JobFinal) -> DiffCounts:
        job = final.job
        try:
            diff = await in_thread(diff_job, self.folder, job.job_id, job.fingerprint)
        except OSError as exc:
            diff = DiffCounts(skipped=f"could not write the diff: {exc.strerror or exc}")
        log.info(
            "diff: %s",
            diff.skipped or f"{diff.new} new, {diff.lost} lost since {diff.previous_run}",
            extra={"job": job.job_id},
        )
        return diff


def _job_line(manifest: JobManifest, *, this_run: bool, duration_s: float = 0.0) -> JobLine:
    return JobLine(
        job_id=manifest.job_id,
        status=manifest.status,
        reason=manifest.reason,
        items=manifest.items_written,
        pages=manifest.pages,
        calls=manifest.calls,
        retries=manifest.retries,
        cost_usd=manifest.cost_usd,
        duration_s=round(duration_s, 3),
        output=manifest.output,
        diff=manifest.diff,
        # One string for the jobs of a file, not a copy a job: run.json's lines stay small.
        config_file=sys.intern(manifest.config_file),
        config_line=manifest.config_line,
        this_run=this_run,
    )


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


def _summary(
    result: CrawlResult,
    night: _Night,
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
            lines[job_id] = _job_line(manifest, this_run=False)
    lines.update(night.lines)
    # Jobs that never started and have no line of an earlier invocation: ids alone.
    not_started = [job_id for job_id in result.not_started if job_id not in lines]
    for line in _invalid_lines(loaded.errors):
        lines[line.job_id] = line
    jobs = sorted(lines.values(), key=lambda line: line.job_id)
    statuses = Counter(line.status for line in jobs)
    # Over the invocation's duration, or a minute when it was shorter: the limiter lets a
    # few calls go back to back (its burst), so a short run's raw average could read above
    # --rate-per-minute while no minute ever held more calls than the rate.
    minutes = max(result.duration_s, 60.0) / 60
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
            calls_per_minute=round(result.calls / minutes, 2),
            jobs_run=len(result.jobs),
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


#: How many jobs the last line names before "and N more".
ATTENTION_NAMED = 3
#: How much of a job's reason the last line quotes (the summary table and run.json have it
#: whole).
REASON_CHARS = 100


def not_started_text(n: int) -> str:
    """``18,211 jobs not started``: the one line a stop gives the jobs it never reached."""
    return f"{n:,} job not started" if n == 1 else f"{n:,} jobs not started"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _cut(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _attention(summary: RunSummary) -> list[str]:
    """The jobs that need attention, the worst first, each with why in a few words."""
    order = {"invalid": 0, "failed": 1, "partial": 2}
    jobs = sorted(
        (job for job in summary.jobs if job.status != "complete"),
        key=lambda job: (order.get(job.status, 3), job.job_id),
    )
    named = []
    for job in jobs:
        # A job stopped by the run's own stop (a signal, the budget) says nothing new.
        if job.reason and job.reason != summary.stop_reason:
            reason = job.reason
            if (
                job.status == "invalid"
                and job.config_file
                and job.reason.startswith(job.config_file)
            ):
                # "file:line: job 'id': field: message": the id is already named.
                reason = job.reason.replace(f"job {job.job_id!r}: ", "", 1)
            named.append(f"{job.job_id} {job.status} ({_cut(reason)})")
        else:
            named.append(f"{job.job_id} {job.status}")
    return named


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:ATTENTION_NAMED])
    more = len(items) - ATTENTION_NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def _closing_line(summary: RunSummary, folder: RunFolder, report: bool) -> str:
    """The last line: the run date's state, this invocation's work, what needs attention.

    One line, because it is what cron mails and what a person reads first. Both totals
    are labelled: "night" is every invocation of the run date, "this invocation" is the
    command that just ran.
    """
    night, invocation = summary.night, summary.invocation
    counts = ", ".join(f"{n} {status}" for status, n in night.jobs_by_status.items())
    night_part = (
        f"night {summary.run_date}: {counts}; {night.items} items, {night.calls} calls, "
        f"{night.cost_usd:.4f} USD over {_count(night.invocations, 'invocation')}"
    )
    skipped = sum(1 for job in summary.jobs if job.reason == "already complete")
    if invocation.jobs_run:
        done = _count(invocation.jobs_run, "job") + " run"
        if skipped:
            done += f" ({skipped} already complete)"
    else:
        done = "nothing to run" + (f" ({skipped} already complete)" if skipped else "")
    invocation_part = (
        f"this invocation: {done}, {invocation.items} items, "
        f"{_count(invocation.calls, 'call')}, {invocation.cost_usd:.4f} USD "
        f"in {invocation.duration_s:.1f} s"
    )
    parts = [night_part, invocation_part]
    if summary.stop_reason:
        parts.append(f"stopped: {_cut(summary.stop_reason)}")
    if summary.not_started:
        parts.append(not_started_text(len(summary.not_started)))
    attention = _attention(summary)
    if attention:
        label = "needs attention" if summary.needs_attention else "not run now, needs attention"
        parts.append(f"{label}: {_named(attention)}")
    extra = f", report: {folder.report}" if report else ""
    parts.append(f"results in {folder.path}/ (summary: {folder.run_json}{extra})")
    head = "attention" if summary.needs_attention else "ok"
    return f"{head}: " + "; ".join(parts)


async def _write_metrics(path: Path, summary: RunSummary, ledger: Ledger) -> None:
    figures = RunMetrics(
        exit_code=summary.exit_code,
        finished_at=time.time(),
        duration_s=summary.invocation.duration_s,
        summary=summary,
        night_throttled_s=ledger.throttled_s,
    )
    try:
        await in_thread(write_metrics, path, figures)
    except OSError as exc:
        # Monitoring then sees a stale file and alerts; the run's results stand.
        log.error("cannot write the metrics file %s: %s", path, exc.strerror or exc)


def _remove_state_if_empty(folder: RunFolder) -> None:
    """Leave no empty state folder behind after a run whose jobs all finished."""
    with contextlib.suppress(OSError):
        folder.state.rmdir()


def _remove_state(folder: RunFolder) -> None:
    if folder.state.is_symlink():
        folder.state.unlink()
    else:
        shutil.rmtree(folder.state, ignore_errors=True)


async def run_batch(
    config_dir: Path,
    *,
    provider: Provider,
    environ: Mapping[str, str],
    settings: RunSettings,
    job_ids: Sequence[str] = (),
    patterns: Sequence[str] = (),
    observer: CrawlObserver | None = None,
    handle_signals: bool = False,
    rng: random.Random | None = None,
    keep_days: int | None = None,
    report: bool = False,
    fetch: Fetch | None = None,
    metrics_file: Path | None = None,
) -> RunOutcome:
    """Load, select, lock, crawl, summarize. Raises UsageError / LockError before any call.

    ``keep_days``: after a run whose every job is complete, remove the run-date folders
    this tool made more than that many days before the run date. ``report``: write the
    run folder's HTML report and opportunity CSVs. ``fetch``: send calls another way than
    HTTP to ``provider`` (tests). ``metrics_file``: also write the run's figures there in
    Prometheus text format, once run.json is written (:mod:`intersect_batch.metrics`).
    """
    loaded = await in_thread(load_jobs, config_dir)
    for error in loaded.errors:
        log.error("invalid config: %s", error.describe(), extra={"file": error.file})
    for warning in loaded.warnings:
        log.warning("config: %s", warning.describe(), extra={"file": warning.file})
    if not loaded.jobs:
        raise UsageError(f"no valid job in {config_dir}: nothing to run")
    entries = select_jobs(loaded.jobs, job_ids, patterns)
    credentials = provider.credentials(environ)
    settings = fit_open_files(settings)
    folder = RunFolder(settings.out_dir, settings.run_date)
    with scrubbed_logs(credentials.scrubber()), output_lock(settings.out_dir):
        await in_thread(mark_run_dir, folder)
        if settings.fresh:
            await in_thread(_remove_state, folder)
        ledger = await in_thread(night_ledger, folder)
        night = _Night(folder, settings, {entry.job.id: entry for entry in entries})
        todo, done = await in_thread(_plan_jobs, entries, folder, settings.fresh)
        for line in done:
            night.lines[line.job_id] = line
            log.info("job already complete: skipped", extra={"job": line.job_id})
        del done
        log.info(
            "run starting",
            extra={
                "jobs": len(entries),
                "run_date": settings.run_date.isoformat(),
                "provider": provider.name,
            },
        )
        settings = with_safety_cap(settings, todo)
        crawl_args = {
            "folder": folder,
            "settings": settings,
            "ledger": ledger,
            "observer": observer,
            "on_job_end": night.job_ended,
            "handle_signals": handle_signals,
            "rng": rng,
            "endpoint": provider.base_url,
        }
        if fetch is not None:
            result = await crawl(todo, fetch=fetch, **crawl_args)  # type: ignore[arg-type]
        else:
            async with http_fetch(provider, credentials, settings) as http:
                result = await crawl(todo, fetch=http, **crawl_args)  # type: ignore[arg-type]
        # What the crawl kept a job (in reference cycles) goes before run.json is built,
        # not at the collector's next pass: the run's peak memory stays the crawl's own.
        gc.collect()
        ledger_now = await in_thread(night_ledger, folder)
        await in_thread(_remove_state_if_empty, folder)
        exit_code = exit_code_for_run(
            interrupted_by=result.interrupted_by,
            account_stopped=result.run_fatal is not None,
            statuses=[
                night.lines[e.job.id].status if e.job.id in night.lines else "partial"
                for e in entries
            ],
            invalid_configs=len(loaded.errors),
        )
        summary = _summary(result, night, loaded, settings, provider, exit_code, ledger_now)
        # The summary's lines are what is left to say of the jobs: their configs and ends
        # go before run.json is encoded (the end of a night of many jobs is its peak).
        result = dataclasses.replace(result, jobs=())
        del todo, entries, loaded, crawl_args, night
        if summary.not_started:
            count = len(summary.not_started)
            log.warning("%s", not_started_text(count), extra={"not_started": count})
        await in_thread(write_json, folder.run_json, summary)
        if metrics_file is not None:
            await _write_metrics(metrics_file, summary, ledger_now)
        if report:
            try:
                path = await in_thread(write_report, folder.path)
            except (OSError, IntersectBatchError) as exc:
                # The crawl's results stand; only the report is missing.
                log.error("cannot write the report: %s", exc)
                report = False
            else:
                log.info("report written", extra={"path": str(path)})
        if keep_days is not None and exit_code == ExitCode.OK:
            await in_thread(prune_runs, folder, keep_days)
    # Details first: the last line always says where the results are.
    lines = []
    if result.run_fatal is not None and result.stop is not None:
        lines.append(result.stop.reason)
    if result.interrupted_by is not None:
        name = signal.Signals(result.interrupted_by).name
        lines.append(f"{name}: progress is saved; run the same command to continue")
    lines.append(_closing_line(summary, folder, report))
    return RunOutcome(exit_code=exit_code, summary=summary, message="\n".join(lines))
